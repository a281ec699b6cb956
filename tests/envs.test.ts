// SPDX-License-Identifier: MIT
// Locomotion envs against Gymnasium's definitions: the project's MJCF against Gymnasium's files
// (compiled models and trajectories; Gymnasium's XMLs are third-party fixtures, skipped with the reason
// when absent), and observations, reward terms, resets, truncation and Hopper's termination against an
// independent float64 loop over the raw MuJoCo API on the project's own MJCF.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, type TestContext } from 'vitest';
import { fixture } from './helpers/fixtures.js';
import { SoupError } from '../src/errors.js';
import { checkPolicyFits, compileMjcf, loadMujoco, resolveEnvName, VecEnv, defaultModelPath, type EnvName } from '../src/envs/index.js';
import { readMjcf, type MjModel } from '../src/envs/mujoco.js';
import { envFactory } from './helpers/envs.js';

/** Gymnasium's own XML for an env (a third-party fixture: skips the test when absent). */
const gymFile = (ctx: TestContext, name: EnvName) => fixture(ctx, `mujoco/${name === 'HalfCheetah-v5' ? 'half_cheetah.xml' : 'hopper.xml'}`);

/** Deterministic action source in [-1, 1] (Park–Miller), independent of the env's own RNG. */
function lcg(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 16807) % 2147483647;
    return (s / 2147483647) * 2 - 1;
  };
}

const make = envFactory();

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol: number, atol: number, what: string): void {
  expect(actual.length, `${what} length`).toBe(expected.length);
  for (let k = 0; k < expected.length; k++) {
    const tol = atol + rtol * Math.abs(expected[k]);
    if (!(Math.abs(actual[k] - expected[k]) <= tol)) {
      throw new Error(`${what}[${k}] = ${actual[k]}, expected ${expected[k]} (tol ${tol})`);
    }
  }
}

async function expectSoupError(p: Promise<unknown> | (() => unknown), code: string, ...parts: (string | RegExp)[]): Promise<void> {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  expect(err, 'expected a SoupError').toBeInstanceOf(SoupError);
  expect((err as SoupError).code).toBe(code);
  for (const part of parts) expect((err as SoupError).message).toMatch(part);
}

describe('project MJCF vs Gymnasium MJCF', () => {
  const fields = [
    'body_mass',
    'body_inertia',
    'body_pos',
    'body_ipos',
    'body_quat',
    'jnt_range',
    'jnt_type',
    'jnt_axis',
    'jnt_pos',
    'jnt_stiffness',
    'dof_armature',
    'dof_damping',
    'actuator_gear',
    'actuator_ctrlrange',
    'geom_size',
    'geom_pos',
    'geom_quat',
    'geom_friction',
    'geom_solref',
    'geom_solimp',
    'geom_margin',
    'geom_contype',
    'geom_conaffinity',
    'geom_condim',
    'qpos0',
  ] as const;

  for (const name of ['HalfCheetah-v5', 'Hopper-v5'] as const) {
    it(`${name}: same compiled model and same trajectory`, async (ctx) => {
      const gymXml = gymFile(ctx, name);
      const mj = await loadMujoco();
      const ours = compileMjcf(mj, readMjcf(defaultModelPath(name)), 'ours');
      const gym = compileMjcf(mj, readMjcf(gymXml), 'gym');
      try {
        for (const k of ['nq', 'nv', 'nu', 'nbody', 'njnt', 'ngeom'] as const) expect(ours[k], k).toBe(gym[k]);
        expect(ours.opt.timestep).toBe(gym.opt.timestep);
        expect(ours.opt.integrator).toBe(gym.opt.integrator);
        const pick = (m: MjModel, f: string) => Array.from((m as unknown as Record<string, ArrayLike<number>>)[f], Number);
        for (const f of fields) expectClose(pick(ours, f), pick(gym, f), 1e-12, 1e-15, f);
        // Gymnasium's published action table: gears and ranges
        if (name === 'HalfCheetah-v5') {
          expect(pick(ours, 'body_mass').reduce((a, b) => a + b, 0)).toBeCloseTo(14, 12);
          expect(pick(ours, 'actuator_gear').filter((_, i) => i % 6 === 0)).toEqual([120, 90, 60, 120, 60, 30]);
        } else {
          expect(pick(ours, 'actuator_gear').filter((_, i) => i % 6 === 0)).toEqual([200, 200, 200]);
          expectClose(
            pick(ours, 'jnt_range').slice(6),
            [-150, 0, -150, 0, -45, 45].map((d) => (d * Math.PI) / 180),
            1e-15,
            0,
            'hopper ranges',
          );
        }
        // same dynamics: 400 physics steps of one random control sequence from a perturbed state
        const da = new mj.MjData(ours);
        const db = new mj.MjData(gym);
        const rnd = lcg(7);
        const qa = da.qpos as Float64Array;
        for (let k = 0; k < ours.nq; k++) qa[k] += 0.05 * rnd();
        (db.qpos as Float64Array).set(da.qpos as Float64Array);
        let maxDiff = 0;
        for (let t = 0; t < 400; t++) {
          for (let k = 0; k < ours.nu; k++) {
            const u = rnd();
            (da.ctrl as Float64Array)[k] = u;
            (db.ctrl as Float64Array)[k] = u;
          }
          mj.mj_step(ours, da);
          mj.mj_step(gym, db);
          const a = da.qpos as Float64Array;
          const b = db.qpos as Float64Array;
          for (let k = 0; k < ours.nq; k++) maxDiff = Math.max(maxDiff, Math.abs(a[k] - b[k]));
        }
        expect(maxDiff).toBeLessThan(1e-9);
        expect(Math.abs((da.qpos as Float64Array)[0])).toBeGreaterThan(1e-3); // it did move
        da.delete();
        db.delete();
      } finally {
        ours.delete();
        gym.delete();
      }
    });
  }
});

/** Reference env step in float64 over the raw API: Gymnasium's formulas written out independently, on the
 *  project's MJCF (the test above shows it compiles to Gymnasium's model). */
async function referenceRollout(name: EnvName, qpos: Float64Array, qvel: Float64Array, actions: number[][], clip: boolean) {
  const mj = await loadMujoco();
  const m = compileMjcf(mj, readMjcf(defaultModelPath(name)), 'ref');
  const d = new mj.MjData(m);
  (d.qpos as Float64Array).set(qpos);
  (d.qvel as Float64Array).set(qvel);
  mj.mj_forward(m, d);
  const skip = name === 'HalfCheetah-v5' ? 5 : 4;
  const dt = m.opt.timestep * skip;
  const out: { obs: number[]; vel: number; ctrlSq: number; healthy: boolean; z: number }[] = [];
  for (const a0 of actions) {
    const a = clip ? a0.map((x) => Math.min(1, Math.max(-1, x))) : a0;
    for (let k = 0; k < m.nu; k++) (d.ctrl as Float64Array)[k] = a[k];
    const x0 = (d.qpos as Float64Array)[0];
    for (let f = 0; f < skip; f++) mj.mj_step(m, d);
    const q = Array.from(d.qpos as Float64Array);
    const v = Array.from(d.qvel as Float64Array);
    const velClip = name === 'Hopper-v5' ? 10 : Infinity;
    const state = [...q.slice(2), ...v];
    out.push({
      obs: [...q.slice(1), ...v.map((x) => Math.max(-velClip, Math.min(velClip, x)))],
      vel: (q[0] - x0) / dt,
      ctrlSq: a.reduce((s, x) => s + x * x, 0),
      healthy: q[1] > 0.7 && q[2] > -0.2 && q[2] < 0.2 && state.every((x) => x > -100 && x < 100),
      z: q[1],
    });
  }
  d.delete();
  m.delete();
  return out;
}

describe('against numbers produced by Gymnasium itself', () => {
  // Gymnasium 1.3.0 with mujoco 3.14.0 (Python), made by the script in docs/locomotion.md.
  const GYM = {
    'HalfCheetah-v5': {
      qpos: [
        0.04207354924039483, 0.04546487134128409, 0.007056000402993361, -0.037840124765396416, -0.047946213733156925, -0.013970774909946294,
        0.032849329935939454, 0.049467912331169095, 0.020605924262087832,
      ],
      qvel: [
        0.05403023058681398, -0.04161468365471424, -0.09899924966004454, -0.06536436208636119, 0.028366218546322625, 0.0960170286650366, 0.07539022543433047,
        -0.014550003380861355, -0.0911130261884677,
      ],
      obsAt: {
        0: [
          0.012987863889088914, -0.04046692417923106, -0.056936949634617595, 0.20363491272857748, 0.33252901256983686, 0.28642918516490784,
          0.035743294734026494, -0.12405811300228381, 0.5866590326716777, -0.9559544896132333, -1.2266522909085595, 0.28856268368978955, 5.778913987864464,
          8.305212185631733, 6.850956439296772, 0.3275931011432946, -3.7792433825694283,
        ],
        4: [
          -0.3131296422457812, -0.0689850689920825, 0.4899356488841778, 0.49459781279030457, 0.09692888211678527, -0.38649879442443397, -0.41396972569668866,
          -0.4081537687432565, 0.04005325864722534, -2.344781507083871, 1.732226167758237, 1.673633599543767, 3.0051070270046445, -2.0699195656845024,
          -8.433486035495736, -4.643422723333364, 0.08720206168141331,
        ],
        12: [
          -0.1482825423216553, -0.19081995722625789, -0.43795498425096013, -0.3840803714116163, -0.3150295298229038, -0.02214829455473742, 0.23560351099135585,
          0.2702196556594046, 0.34399618034624274, 0.2580499326436321, -4.278691879386991, -1.4709191874378975, 0.44149774612612186, 2.334664090090676,
          6.272131804457513, 7.277047309641317, 5.8289284546578495,
        ],
        24: [
          0.34000541750095975, -1.3749191921627897, 0.3275947235304543, -0.06440918770491283, -0.3314835264823747, -0.7407164808954276, -0.41926651022501343,
          -0.10328372095221673, 0.17290518379668224, -0.20396238984815834, -1.2854688156193417, -3.8134802394369567, -4.159293495199698, -3.009607535426989,
          1.1632141978228803, 1.9353439450765921, 2.9773553963956605,
        ],
      } as Record<number, number[]>,
      reward: [
        0.22864045730392812, 0.36430139020841945, -0.08919238643204819, -0.6868242304697199, -0.6146900721546977, 0.08394199140139419, 0.15162149250438794,
        -0.10115832978849204, -0.33794923335057125, -0.4102171176260197, -0.3980197996744118, -0.2792966589923193, -0.0548801914313507, 0.15833660249924242,
        0.08900446091783054, -0.29624813977173736, -0.48248884926101177, -0.5066591283643629, -0.3801424729977856, -0.10306454847816188, 0.19233952707334778,
        0.41232416056588883, 0.444136766266227, 0.20706968754298094, -0.02634073218942312,
      ],
      xVelocity: [
        0.4203542970732915, 0.5843930013553463, 0.17125949664557327, -0.39514046720411006, -0.31723914227455546, 0.3586788726574977, 0.3870438951247035,
        0.09891319876547067, -0.15077433198433743, -0.20673878129179118, -0.15756569215144733, -0.0005351231093694842, 0.24348322595565797, 0.44734337215637743,
        0.34459016119134434, -0.08066661837986877, -0.2925699288632533, -0.3146380564535048, -0.1593540686522732, 0.15810926605697911, 0.4843926603226306,
        0.7095987799067854, 0.718243805240989, 0.44173822551733855, 0.17324717917799326,
      ],
      rewardCtrl: [
        -0.1917138397693634, -0.22009161114692688, -0.26045188307762146, -0.29168376326560974, -0.2974509298801422, -0.2747368812561035, -0.23542240262031555,
        -0.2000715285539627, -0.18717490136623383, -0.20347833633422852, -0.24045410752296448, -0.27876153588294983, -0.29836341738700867, -0.289006769657135,
        -0.2555857002735138, -0.2155815213918686, -0.18991892039775848, -0.19202107191085815, -0.2207884043455124, -0.261173814535141, -0.29205313324928284,
        -0.2972746193408966, -0.27410703897476196, -0.2346685379743576, -0.19958791136741638,
      ],
      zDistance: [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    },
    'Hopper-v5': {
      qpos: [0.04207354924039483, 1.2954648713412842, 0.007056000402993361, -0.037840124765396416, -0.047946213733156925, -0.013970774909946294],
      qvel: [0.05403023058681398, -0.04161468365471424, -0.09899924966004454, -0.06536436208636119, 0.028366218546322625, 0.0960170286650366],
      obsAt: {
        0: [
          1.2946904771965515, 0.010342582139836914, -0.035187467701495403, -0.04510907248975283, -0.0082999974768862, 0.18171684011945308, -0.15233458377398185,
          0.9193458787097212, 0.7276806271230845, 0.6804026558097642, 1.3201686845452227,
        ],
        7: [
          1.266929427225599, 0.09252098033633133, 0.02160456171274102, 0.023155141469630363, 0.1921605859196024, 0.040785226612978745, -0.7143103300439558,
          -0.5630100313431131, -0.41941218266314284, -0.46448270818179554, 2.8276018034350434,
        ],
        14: [
          1.2161612604867924, -0.029401124438700833, -0.011763289210678403, -0.17117095106505814, 0.16039969694403663, -0.6189429248266664, -1.2503052991325327,
          -4.109149510613325, -1.3021959631178943, -6.287183021093855, -1.6707039498047038,
        ],
      } as Record<number, number[]>,
      reward: [
        1.1164691769987976, 1.2656461099794023, 1.4426981128491068, 1.5491025875775555, 1.3711976062084927, 1.2029353030813932, 1.1106162431048268,
        1.0577431124918684, 1.003500521035883, 0.9184250895598287, 0.8109063419015557, 0.6925775238905407, 0.5736725351636268, 0.47036887156386575,
        0.40304557470216507,
      ],
      xVelocity: [
        0.11796505602585869, 0.26790433206389486, 0.4455127305555695, 0.5521075513201246, 0.3740200153596147, 0.20533969438132643, 0.11257131247353197,
        0.05938360950020691, 0.005011622297595476, -0.08008415962445191, -0.18765761689604807, -0.30619032144208175, -0.42545513403807134, -0.529154377978242,
        -0.5967155433129929,
      ],
      rewardCtrl: [
        -0.0014958790270611644, -0.002258222084492445, -0.002814617706462741, -0.003004963742569089, -0.002822409151121974, -0.002404391299933195,
        -0.0019550693687051535, -0.0016404970083385706, -0.0015111012617126107, -0.001490750815719366, -0.0014360412023961544, -0.001232154667377472,
        -0.0008723307983018458, -0.0004767504578921944, -0.00023888198484200984,
      ],
      zDistance: [
        0.044690477196551504, 0.043006015095454986, 0.04031855506659321, 0.03656513195427791, 0.03223044309688605, 0.027530121529437013, 0.0224350586280484,
        0.016929427225599092, 0.0110520973544177, 0.004863433618090607, -0.001644814357293578, -0.00856755903565709, -0.0160826352744734, -0.0244277341396959,
        -0.033838739513207594,
      ],
    },
  };

  // same initial state (set_state) and the same float32 actions as the generator script
  const action = (name: EnvName, t: number, k: number) => Math.fround(0.9 * Math.sin(0.37 * t + 0.71 * k) + (name === 'Hopper-v5' && k === 0 ? 0.6 : 0));

  it('HalfCheetah-v5: 25 steps through ground contact match Gymnasium to float32 precision', async () => {
    const g = GYM['HalfCheetah-v5'];
    // raw Gymnasium semantics (no ClipAction wrapper): here the actions stay inside [-1, 1] anyway
    const env = await make({ env: 'HalfCheetah-v5', numEnvs: 1, clipActions: false });
    env.setState(0, g.qpos, g.qvel);
    for (let t = 0; t < g.reward.length; t++) {
      const r = env.step(Float32Array.from({ length: 6 }, (_, k) => action('HalfCheetah-v5', t, k)));
      if (g.obsAt[t]) expectClose(r.obs, g.obsAt[t], 1e-6, 1e-6, `obs@${t}`);
      expectClose([r.reward[0], r.rewards[0], r.rewards[1]], [g.reward[t], g.xVelocity[t], g.rewardCtrl[t] / 0.1], 1e-6, 1e-7, `rewards@${t}`);
      expect(r.terminated[0]).toBe(0);
    }
  });

  it('Hopper-v5: healthy steps before the first ground contact match Gymnasium (with mo-hopper-v5 vectors)', async () => {
    // From the first contact (step 15) MuJoCo 3.3.8 (WASM) and 3.14 (Python) part by ~1e-2 in the
    // velocities: an engine-version difference, not an env one (see docs/locomotion.md).
    const g = GYM['Hopper-v5'];
    const env = await make({ env: 'Hopper-v5', numEnvs: 1, clipActions: false });
    env.setState(0, g.qpos, g.qvel);
    for (let t = 0; t < g.reward.length; t++) {
      // the thigh action exceeds 1 at steps 2-7: Gymnasium charges the raw action (clipActions: false)
      const r = env.step(Float32Array.from({ length: 3 }, (_, k) => action('Hopper-v5', t, k)));
      if (g.obsAt[t]) expectClose(r.obs, g.obsAt[t], 1e-6, 1e-6, `obs@${t}`);
      const mo = [g.xVelocity[t] + 1, 10 * g.zDistance[t] + 1, g.rewardCtrl[t] / 1e-3 + 1];
      // Gymnasium sums the squares of a float32 action in float32 (relative error ~1e-7 of Σa²)
      expectClose([r.reward[0], ...r.rewards], [g.reward[t], ...mo], 1e-6, 1e-7, `rewards@${t}`);
      expect(r.terminated[0]).toBe(0);
    }
  });
});

describe('HalfCheetah-v5', () => {
  it('observation layout, dt, reward vector and scalar reward on a fixed action sequence', async () => {
    const env = await make({ env: 'HalfCheetah-v5', modelPath: defaultModelPath('HalfCheetah-v5'), numEnvs: 1, seed: 11 });
    expect(env.info.obsDim).toBe(17);
    expect(env.info.actDim).toBe(6);
    expect(env.info.dt).toBeCloseTo(0.05, 15);
    expect(env.info.rewardNames).toEqual(['velocity', 'neg_ctrl_sq']);
    const s0 = env.state(0);
    // order: qpos[1:] then qvel
    expectClose(env.obs, Float32Array.from([...s0.qpos.slice(1), ...s0.qvel]), 0, 0, 'reset obs');
    const rnd = lcg(3);
    // float32 values, as the env receives them
    const actions = Array.from({ length: 60 }, () => Array.from({ length: 6 }, () => Math.fround(1.2 * rnd())));
    const ref = await referenceRollout('HalfCheetah-v5', s0.qpos, s0.qvel, actions, true);
    let ret = 0;
    let refRet = 0;
    for (let t = 0; t < actions.length; t++) {
      const r = env.step(Float32Array.from(actions[t]));
      expectClose(r.obs, ref[t].obs, 2e-6, 2e-6, `obs@${t}`);
      expectClose([r.rewards[0], r.rewards[1]], [ref[t].vel, -ref[t].ctrlSq], 1e-6, 1e-6, `rewards@${t}`);
      expectClose([r.reward[0]], [ref[t].vel - 0.1 * ref[t].ctrlSq], 1e-6, 1e-6, `reward@${t}`);
      expect(r.terminated[0]).toBe(0);
      expect(r.truncated[0]).toBe(0);
      ret += r.reward[0];
      refRet += ref[t].vel - 0.1 * ref[t].ctrlSq;
    }
    expect(ret).toBeCloseTo(refRet, 4);
    // it moved: velocity terms are not all zero
    expect(ref.some((x) => Math.abs(x.vel) > 0.05)).toBe(true);
  });

  it('clipActions: cost on the clipped action (default) or the raw one; physics identical', async () => {
    const a = new Float32Array([1.5, -2, 0.25, 0.5, -0.75, 3]);
    const clipped = await make({ env: 'HalfCheetah-v5', numEnvs: 1, seed: 5 });
    const raw = await make({ env: 'HalfCheetah-v5', numEnvs: 1, seed: 5, clipActions: false });
    const r1 = clipped.step(a);
    const r2 = raw.step(a);
    expect(r1.rewards[1]).toBeCloseTo(-(1 + 1 + 0.0625 + 0.25 + 0.5625 + 1), 6);
    expect(r2.rewards[1]).toBeCloseTo(-(2.25 + 4 + 0.0625 + 0.25 + 0.5625 + 9), 6);
    expect(Array.from(r2.obs)).toEqual(Array.from(r1.obs));
  });

  it('truncates at 1000 steps (never terminates), keeps the final observation and resets', async () => {
    const env = await make({ env: 'HalfCheetah-v5', numEnvs: 2, seed: 2 });
    const a = new Float32Array(12);
    const rnd = lcg(9);
    let last = new Float32Array(34);
    for (let t = 1; t <= 1000; t++) {
      for (let j = 0; j < a.length; j++) a[j] = rnd();
      last = Float32Array.from(env.obs);
      const r = env.step(a);
      expect(r.terminated[0] + r.terminated[1]).toBe(0);
      if (t < 1000) {
        expect(r.truncated[0] + r.truncated[1], `step ${t}`).toBe(0);
        expect(r.episodeStep[0]).toBe(t);
      } else {
        expect(Array.from(r.truncated)).toEqual([1, 1]);
        expect(Array.from(r.episodeStep)).toEqual([0, 0]);
        // the new episode starts near qpos0 (z ≈ 0 ± 0.1) while the final obs is a moved cheetah
        const fin = r.finalObs.slice(0, 17);
        expect(Array.from(fin)).not.toEqual(Array.from(r.obs.slice(0, 17)));
        expect(Math.abs(r.obs[0])).toBeLessThanOrEqual(0.1);
        expect(last.length).toBe(34);
      }
    }
  });

  it('reset noise: qpos0 + U(-0.1, 0.1), qvel 0.1·N(0,1); seeded and per-env', async () => {
    const n = 300;
    const env = await make({ env: 'HalfCheetah-v5', numEnvs: n, seed: 1234 });
    const pos: number[] = [];
    const vel: number[] = [];
    for (let i = 0; i < n; i++) {
      const s = env.state(i);
      pos.push(...s.qpos); // qpos0 is all zeros for the cheetah
      vel.push(...s.qvel);
    }
    const mean = (x: number[]) => x.reduce((a, b) => a + b, 0) / x.length;
    const sd = (x: number[]) => Math.sqrt(mean(x.map((v) => (v - mean(x)) ** 2)));
    expect(Math.max(...pos.map(Math.abs))).toBeLessThanOrEqual(0.1);
    expect(Math.max(...pos.map(Math.abs))).toBeGreaterThan(0.099);
    expect(Math.abs(mean(pos))).toBeLessThan(0.005); // sd of the mean: 0.0577/√2700 ≈ 0.0011
    expect(sd(pos)).toBeGreaterThan(0.0577 * 0.93);
    expect(sd(pos)).toBeLessThan(0.0577 * 1.07);
    expect(Math.abs(mean(vel))).toBeLessThan(0.01);
    expect(sd(vel)).toBeGreaterThan(0.1 * 0.93);
    expect(sd(vel)).toBeLessThan(0.1 * 1.07);
    expect(Math.max(...vel.map(Math.abs))).toBeGreaterThan(0.2); // normal, not uniform ±0.1
    // same seed → same start; other seed or other env → other start
    const first = Float32Array.from(env.obs);
    env.reset(1234);
    expect(Array.from(env.obs)).toEqual(Array.from(first));
    env.reset(1235);
    expect(env.obs[0]).not.toBe(first[0]);
    expect(first[0]).not.toBe(first[17]);
  });

  it('rejects bad actions', async () => {
    const env = await make({ env: 'HalfCheetah-v5', numEnvs: 2 });
    await expectSoupError(() => env.step(new Float32Array(11)), 'ERR_SOUP_SHAPE_MISMATCH', /2·6 = 12/, /11 values/);
    await expectSoupError(() => env.step(new Float64Array(12) as unknown as Float32Array), 'ERR_SOUP_SHAPE_MISMATCH', /Float64Array/);
    const a = new Float32Array(12).fill(0.1);
    a[7] = NaN;
    await expectSoupError(() => env.step(a), 'ERR_SOUP_INVALID_ARG', /actions\[7\] \(env 1, dim 1\) is NaN/);
  });
});

describe('Hopper-v5', () => {
  it('observation (qpos[1:] + clipped qvel), healthy reward, termination on a fixed action sequence', async () => {
    const env = await make({ env: 'Hopper-v5', modelPath: defaultModelPath('Hopper-v5'), numEnvs: 1, seed: 21 });
    expect(env.info.obsDim).toBe(11);
    expect(env.info.actDim).toBe(3);
    expect(env.info.dt).toBeCloseTo(0.008, 15);
    const s0 = env.state(0);
    // reset noise U(-5e-3, 5e-3) around qpos0 = [0, 1.25, 0, 0, 0, 0] and qvel 0
    expectClose(s0.qpos, [0, 1.25, 0, 0, 0, 0], 0, 5e-3, 'reset qpos');
    expectClose(s0.qvel, [0, 0, 0, 0, 0, 0], 0, 5e-3, 'reset qvel');
    // a constant push on the thigh with noise tips the hopper over within a few hundred steps
    const rnd = lcg(5);
    const actions = Array.from({ length: 400 }, () => [0.8 + 0.2 * rnd(), 0.3 * rnd(), -0.5 + 0.2 * rnd()].map((x) => Math.fround(x)));
    const ref = await referenceRollout('Hopper-v5', s0.qpos, s0.qvel, actions, true);
    const end = ref.findIndex((r) => !r.healthy);
    expect(end).toBeGreaterThan(3);
    for (let t = 0; t <= end; t++) {
      const r = env.step(Float32Array.from(actions[t]));
      const h = ref[t].healthy ? 1 : 0;
      const obs = t === end ? r.finalObs : r.obs;
      expectClose(obs, ref[t].obs, 2e-6, 2e-6, `obs@${t}`);
      expectClose(Array.from(r.rewards), [ref[t].vel + h, 10 * (ref[t].z - 1.25) + h, -ref[t].ctrlSq + h], 1e-6, 1e-6, `rewards@${t}`);
      expectClose([r.reward[0]], [ref[t].vel + h - 1e-3 * ref[t].ctrlSq], 1e-6, 1e-6, `reward@${t}`);
      expect(r.terminated[0], `terminated@${t}`).toBe(t === end ? 1 : 0);
    }
    // after termination the env restarted near qpos0
    expect(env.buffers.episodeStep[0]).toBe(0);
    expect(Math.abs(env.obs[0] - 1.25)).toBeLessThanOrEqual(5e-3);
  });

  it('healthy rule edges: z, angle, unclipped state range; clipped velocities in the observation', async () => {
    const env = await make({ env: 'Hopper-v5', numEnvs: 1, seed: 1 });
    const zero = new Float32Array(3);
    const q = [0, 1.25, 0, -0.1, -0.1, 0];
    // observation clips |qvel| at 10 but the healthy rule sees the raw 60 (< 100: still healthy)
    env.setState(0, q, [0, 0, 0, 60, -25, 3]);
    expect(Array.from(env.obs.slice(5))).toEqual([0, 0, 0, 10, -10, 3]);
    env.step(zero);
    expect(env.buffers.terminated[0]).toBe(0);
    // |qvel| above 100 on a leg joint: unhealthy although the observation shows 10
    env.setState(0, q, [0, 0, 0, 400, 0, 0]);
    env.step(zero);
    expect(env.buffers.terminated[0]).toBe(1);
    expect(env.buffers.finalObs[8]).toBe(10);
    expect(env.buffers.rewards[2]).toBeCloseTo(0, 12); // no healthy bonus, zero action
    // torso too low
    env.setState(0, [0, 0.6, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]);
    env.step(zero);
    expect(env.buffers.terminated[0]).toBe(1);
    // tilted beyond 0.2 rad
    env.setState(0, [0, 1.25, 0.3, 0, 0, 0], [0, 0, 0, 0, 0, 0]);
    env.step(zero);
    expect(env.buffers.terminated[0]).toBe(1);
    // upright, slightly tilted inside the range: healthy, reward includes the bonus
    env.setState(0, [0, 1.25, 0.1, 0, 0, 0], [0, 0, 0, 0, 0, 0]);
    env.step(zero);
    expect(env.buffers.terminated[0]).toBe(0);
    expect(env.buffers.reward[0] - env.buffers.rewards[0]).toBeCloseTo(0, 12); // = v + 1 − 0
    // terminateWhenUnhealthy: false keeps going (and gives no bonus)
    const cont = await make({ env: 'Hopper-v5', numEnvs: 1, terminateWhenUnhealthy: false });
    cont.setState(0, [0, 0.6, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]);
    cont.step(zero);
    expect(cont.buffers.terminated[0]).toBe(0);
    expect(cont.buffers.reward[0]).toBeCloseTo(cont.buffers.rewards[0], 12);
    expect(cont.buffers.rewards[0] - cont.buffers.rewards[2]).toBeCloseTo(cont.buffers.rewards[0], 12);
  });
});

describe('views survive WASM heap growth', () => {
  it('an env keeps stepping correctly after the heap grows', async () => {
    const mj = await loadMujoco();
    const a = await make({ env: 'Hopper-v5', numEnvs: 2, seed: 4 });
    const rnd = lcg(17);
    const acts = Array.from({ length: 40 }, () => Float32Array.from({ length: 6 }, () => rnd()));
    const seen: number[] = [];
    for (let t = 0; t < 20; t++) seen.push(...a.step(acts[t]).obs);
    // a raw view taken now goes stale (length 0) once the heap grows: proves growth happened
    const probeModel = compileMjcf(mj, readMjcf(defaultModelPath('Hopper-v5')), 'probe');
    const probeData = new mj.MjData(probeModel);
    const probe = probeData.qpos as Float64Array;
    expect(probe.length).toBe(6);
    const big = await make({ env: 'HalfCheetah-v5', numEnvs: 400 });
    expect(probe.length).toBe(0);
    expect(big.obs.length).toBe(400 * 17);
    for (let t = 20; t < 40; t++) seen.push(...a.step(acts[t]).obs);
    // the same run without interruption in a new env gives the same numbers
    const b = await make({ env: 'Hopper-v5', numEnvs: 2, seed: 4 });
    const again: number[] = [];
    for (let t = 0; t < 40; t++) again.push(...b.step(acts[t]).obs);
    expect(seen).toEqual(again);
    probeData.delete();
    probeModel.delete();
  });
});

describe('bad input', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rsoup-envs-'));

  it("an MJCF file that fails to parse names the file and MuJoCo's message", async () => {
    const f = join(dir, 'broken.xml');
    writeFileSync(f, '<mujoco><worldbody><body><geom type="sphere" size="0.1"/></bod></worldbody></mujoco>');
    await expectSoupError(VecEnv.create({ env: 'HalfCheetah-v5', modelPath: f }), 'ERR_SOUP_FORMAT', f, /XML_ERROR_MISMATCHED_ELEMENT/);
  });

  it('an MJCF file that fails to compile names the file and the element', async () => {
    const f = join(dir, 'badref.xml');
    writeFileSync(
      f,
      '<mujoco><worldbody><body><joint name="j" type="hinge"/><geom type="sphere" size="0.1"/></body></worldbody><actuator><motor joint="nope"/></actuator></mujoco>',
    );
    await expectSoupError(VecEnv.create({ env: 'Hopper-v5', modelPath: f }), 'ERR_SOUP_FORMAT', f, /unknown transmission target 'nope'/);
    const g = join(dir, 'badattr.xml');
    writeFileSync(g, '<mujoco><worldbody><body><geom type="sphere" size="abc"/></body></worldbody></mujoco>');
    await expectSoupError(VecEnv.create({ env: 'Hopper-v5', modelPath: g }), 'ERR_SOUP_FORMAT', g, /bad format in attribute 'size'/);
    // the module still works after MuJoCo threw
    const ok = await make({ env: 'Hopper-v5' });
    expect(ok.obs.length).toBe(11);
  });

  it('a missing file, a model that is not a planar walker, an unknown env', async () => {
    await expectSoupError(VecEnv.create({ env: 'Hopper-v5', modelPath: join(dir, 'nope.xml') }), 'ERR_SOUP_IO', /nope\.xml/, /ENOENT/);
    // a walker with a free root joint (as Gymnasium's Humanoid and Ant have): not planar
    const free = join(dir, 'humanoid.xml');
    writeFileSync(
      free,
      `<mujoco model="free walker"><worldbody><body name="torso" pos="0 0 1.4"><freejoint name="root"/>
      <geom type="capsule" fromto="0 -0.07 0 0 0.07 0" size="0.07"/>
      <body name="thigh" pos="0 0 -0.1"><joint name="hip" type="hinge" axis="0 1 0" range="-20 20"/><geom type="capsule" fromto="0 0 0 0 0 -0.3" size="0.05"/></body>
    </body></worldbody><actuator><motor joint="hip" gear="100" ctrlrange="-1 1"/></actuator></mujoco>`,
    );
    await expectSoupError(VecEnv.create({ env: 'Hopper-v5', modelPath: free }), 'ERR_SOUP_SHAPE_MISMATCH', /humanoid\.xml/, /planar root/, /free/);
    await expectSoupError(VecEnv.create({ env: 'Humanoid-v5' }), 'ERR_SOUP_INVALID_ARG', /unknown env 'Humanoid-v5'/, /HalfCheetah-v5, Hopper-v5/);
    await expectSoupError(() => resolveEnvName(42), 'ERR_SOUP_INVALID_ARG', /number 42/);
    expect(resolveEnvName('mo-halfcheetah-v5')).toBe('HalfCheetah-v5');
  });

  it('bad options', async () => {
    await expectSoupError(VecEnv.create({ env: 'Hopper-v5', numEnvs: 0 }), 'ERR_SOUP_INVALID_ARG', /numEnvs/);
    await expectSoupError(VecEnv.create({ env: 'Hopper-v5', numEnvs: 2, threads: 3 }), 'ERR_SOUP_INVALID_ARG', /threads/);
    await expectSoupError(VecEnv.create({ env: 'Hopper-v5', frameSkip: 1.5 }), 'ERR_SOUP_INVALID_ARG', /frameSkip/);
    await expectSoupError(VecEnv.create({ env: 'Hopper-v5', healthyZRange: [1, 0.5] }), 'ERR_SOUP_INVALID_ARG', /healthyZRange/);
    await expectSoupError(VecEnv.create({ env: 'Hopper-v5', seed: 0.5 }), 'ERR_SOUP_INVALID_ARG', /seed/);
    const env = await make({ env: 'Hopper-v5' });
    await expectSoupError(() => env.setState(0, [0, 1], [0]), 'ERR_SOUP_SHAPE_MISMATCH', /nq=6/);
    await expectSoupError(() => env.frame(3), 'ERR_SOUP_INVALID_ARG', /env index 3/);
  });

  it('a policy whose sizes do not match the env', async () => {
    const env = await make({ env: 'Hopper-v5' });
    checkPolicyFits(env.info, { obsDim: 11, actDim: 3 }, 'ok.safetensors');
    await expectSoupError(
      () => checkPolicyFits(env.info, { obsDim: 17, actDim: 6 }, 'runs/cheetah/policy.safetensors'),
      'ERR_SOUP_SHAPE_MISMATCH',
      /policy runs\/cheetah\/policy\.safetensors takes 17 observations and gives 6 actions/,
      /Hopper-v5 .*obsDim=11, actDim=3/,
    );
  });
});
