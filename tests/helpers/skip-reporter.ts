// SPDX-License-Identifier: MIT
// Lists every skipped test with its reason at the end of a run (the default reporter shows only a count):
// an environment skip (tests/helpers/fixtures.ts) names what was missing; a skipIf names no reason, so
// its test's title says what it needs.
import type { Reporter, TestModule } from 'vitest/node';

export default class SkipReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    const lines: string[] = [];
    for (const m of modules) {
      for (const t of m.children.allTests()) {
        const r = t.result();
        if (r.state !== 'skipped') continue;
        lines.push(`  ${m.moduleId.replace(`${process.cwd()}/`, '')} > ${t.fullName}${r.note ? `\n      reason: ${r.note}` : ''}`);
      }
    }
    if (lines.length) process.stdout.write(`\nSkipped tests (${lines.length}):\n${lines.join('\n')}\n`);
  }
}
