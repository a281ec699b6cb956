// SPDX-License-Identifier: MIT
// A private one-node Slurm cluster for the tests (Debian's slurmctld/slurmd/munge, measured with
// Slurm 22.05.8 on this kind of machine): its own slurm.conf (reached through SLURM_CONF), munge key and socket,
// state, spool, pid and log files, all in one temp dir; the machine's own /etc/slurm, /etc/munge and
// /run/munge are never touched. It starts only as root with ports 6817/6818 free, and is stopped by pid.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { pidAlive } from '../../src/io/process.js';

export const SLURM_PORTS = [6817, 6818];
const SBIN = { slurmctld: '/usr/sbin/slurmctld', slurmd: '/usr/sbin/slurmd', munged: '/usr/sbin/munged' };

export interface Cluster {
  dir: string;
  conf: string;
  env: NodeJS.ProcessEnv;
  /** Daemon pids (munged, slurmctld, slurmd). */
  pids: Record<string, number>;
  /** scancel everything, `scontrol shutdown`, stop munged; returns the daemons still alive after it (none). */
  stop(): Promise<string[]>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '0.0.0.0', () => s.close(() => resolve(true)));
  });
}

const onPath = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const readPid = (p: string) => (existsSync(p) ? Number(readFileSync(p, 'utf8').trim()) : 0);

/** Starts the cluster in `dir`, or says why it cannot (the test skips with that reason). */
export async function startCluster(dir: string): Promise<{ cluster: Cluster } | { reason: string }> {
  if (process.getuid?.() !== 0)
    return { reason: 'the test Slurm cluster runs slurmctld and slurmd as root (SlurmUser=root, no cgroups): run the tests as root' };
  const absent = [...Object.values(SBIN).filter((p) => !existsSync(p)), ...['sbatch', 'scontrol', 'scancel', 'sinfo'].filter((c) => !onPath(c))];
  if (absent.length)
    return {
      reason: `Slurm is not installed (${absent.join(', ')} missing): \`npm test\` installs slurmctld, slurmd, slurm-client and munge (scripts/bootstrap.mjs --test, as root)`,
    };
  for (const p of SLURM_PORTS) {
    if (!(await portFree(p))) return { reason: `port ${p} is taken (another Slurm on this machine?): the test cluster does not start beside it` };
  }
  for (const d of ['state', 'spool', 'log']) mkdirSync(join(dir, d), { recursive: true });
  const conf = join(dir, 'slurm.conf');
  const sock = join(dir, 'munge.socket');
  const env: NodeJS.ProcessEnv = { ...process.env, SLURM_CONF: conf };
  const pids: Record<string, number> = {};
  const logs = () =>
    ['munged.log', 'slurmctld.log', 'slurmd.log']
      .map((f) => join(dir, 'log', f))
      .filter(existsSync)
      .map((f) => `${f}:\n${readFileSync(f, 'utf8').split('\n').slice(-8).join('\n')}`)
      .join('\n');

  const stop = async (): Promise<string[]> => {
    if (pids.slurmctld && pidAlive(pids.slurmctld)) {
      spawnSync('scancel', ['--full', '--user', 'root'], { env, stdio: 'ignore', timeout: 10_000 });
      // running jobs end first (their scripts get SIGTERM), then the daemons
      for (let i = 0; i < 50 && spawnSync('squeue', ['-h'], { env, encoding: 'utf8', timeout: 5000 }).stdout?.trim(); i++) await sleep(100);
      spawnSync('scontrol', ['shutdown'], { env, stdio: 'ignore', timeout: 10_000 });
    }
    for (let i = 0; i < 100 && [pids.slurmctld, pids.slurmd].some((p) => p && pidAlive(p)); i++) await sleep(100);
    for (const [name, pid] of Object.entries(pids)) {
      if (name !== 'munged' && pid && pidAlive(pid)) process.kill(pid, 'SIGKILL');
    }
    if (pids.munged && pidAlive(pids.munged)) process.kill(pids.munged, 'SIGTERM');
    for (let i = 0; i < 50 && pids.munged && pidAlive(pids.munged); i++) await sleep(100);
    return Object.entries(pids)
      .filter(([, p]) => p && pidAlive(p))
      .map(([n, p]) => `${n} (pid ${p})`);
  };

  // munge: a key of our own, a socket in the temp dir (slurm.conf's AuthInfo points Slurm at it)
  writeFileSync(join(dir, 'munge.key'), randomBytes(1024), { mode: 0o600 });
  const m = spawnSync(
    SBIN.munged,
    [
      '--force',
      `--socket=${sock}`,
      `--key-file=${join(dir, 'munge.key')}`,
      `--pid-file=${join(dir, 'munged.pid')}`,
      `--log-file=${join(dir, 'log', 'munged.log')}`,
      `--seed-file=${join(dir, 'munged.seed')}`,
    ],
    { stdio: 'ignore' },
  );
  pids.munged = readPid(join(dir, 'munged.pid'));
  if (m.status !== 0 || !pids.munged) return { reason: `munged did not start (exit ${m.status}):\n${logs()}` };

  // the node line from slurmd -C (without NodeName and Boards), so the node is never drained for a mismatch
  const host = hostname().split('.')[0];
  const node = execFileSync(SBIN.slurmd, ['-C'], { encoding: 'utf8' })
    .split('\n')[0]
    .split(' ')
    .filter((t) => !/^(NodeName|Boards)=/.test(t))
    .join(' ');
  writeFileSync(
    conf,
    `# the rsoup tests' private one-node cluster (tests/helpers/slurm.ts)
ClusterName=rsouptest
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=${sock},cred_expire=10
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=${join(dir, 'log', 'jobcomp.log')}
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerParameters=batch_sched_delay=0,sched_interval=2
ReturnToService=2
MailProg=/bin/true
MinJobAge=3600
StateSaveLocation=${join(dir, 'state')}
SlurmdSpoolDir=${join(dir, 'spool')}
SlurmctldPidFile=${join(dir, 'slurmctld.pid')}
SlurmdPidFile=${join(dir, 'slurmd.pid')}
SlurmctldLogFile=${join(dir, 'log', 'slurmctld.log')}
SlurmdLogFile=${join(dir, 'log', 'slurmd.log')}
NodeName=${host} NodeAddr=127.0.0.1 ${node} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
`,
  );
  // no DependencyParameters=kill_invalid_depend: the jobs' own --kill-on-invalid-dep=yes is what is tested
  const cluster: Cluster = { dir, conf, env, pids, stop };
  for (const d of ['slurmctld', 'slurmd'] as const) {
    const r = spawnSync(SBIN[d], [], { env, stdio: 'ignore', timeout: 20_000 });
    pids[d] = readPid(join(dir, `${d}.pid`));
    for (let i = 0; i < 20 && !pids[d]; i++) {
      await sleep(100);
      pids[d] = readPid(join(dir, `${d}.pid`));
    }
    if (r.status !== 0 || !pids[d]) {
      await stop();
      return { reason: `${d} did not start (exit ${r.status}):\n${logs()}` };
    }
  }
  for (let i = 0; i < 100; i++) {
    const s = spawnSync('sinfo', ['-h', '-N', '-o', '%T'], { env, encoding: 'utf8', timeout: 5000 });
    if (s.stdout?.trim() === 'idle') return { cluster };
    await sleep(100);
  }
  const state = spawnSync('sinfo', ['-h', '-N', '-o', '%T %E'], { env, encoding: 'utf8' }).stdout;
  await stop();
  return { reason: `the test cluster's node did not become idle in 10 s (${state.trim()}):\n${logs()}` };
}
