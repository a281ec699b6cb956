import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // the default output, then every skipped test with its reason (tests/helpers/fixtures.ts)
    reporters: ['default', './tests/helpers/skip-reporter.ts'],
    // Native addons and libgomp do not survive worker threads well: one process per file.
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
