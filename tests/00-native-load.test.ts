import { describe, expect, it } from 'vitest';
import { coreAddon, torchAddon } from '../src/native/index.js';

describe('native addons', () => {
  it('core addon loads and reports a SIMD level that this CPU supports', () => {
    const info = coreAddon().info();
    expect(['avx512bf16', 'avx512', 'avx2', 'scalar']).toContain(info.simd);
    if (info.simd === 'avx2') expect(info.cpuFeatures).toContain('avx2');
    if (info.simd === 'avx512') expect(info.cpuFeatures).toContain('avx512f');
    if (info.simd === 'avx512bf16') expect(info.cpuFeatures).toEqual(expect.arrayContaining(['avx512f', 'avx512dq', 'avx512bf16']));
    expect(info.hardwareThreads).toBeGreaterThan(0);
  });

  it('torch addon loads, reports libtorch and uses all cores', () => {
    const info = torchAddon().info();
    expect(info.libtorch).toMatch(/^\d+\.\d+/);
    expect(info.threads).toBe(coreAddon().info().hardwareThreads);
    expect(process.env.OMP_WAIT_POLICY).toBeTruthy();
  });
});
