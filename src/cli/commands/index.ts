// SPDX-License-Identifier: MIT
// The list of rsoup commands. Each module exports `register(program)`.
import type { Command } from 'commander';
import { register as doctor } from './doctor.js';
import { register as merge } from './merge.js';
import { register as bench } from './bench.js';
import { register as pareto } from './pareto.js';
import { register as rewards } from './rewards.js';
import { register as train } from './train.js';
import { register as run } from './run.js';
import { register as demo } from './demo.js';
import { register as serve } from './serve.js';
import { register as setup } from './setup.js';
import { register as status } from './status.js';

export const commands: Array<(program: Command) => void> = [doctor, setup, merge, bench, pareto, rewards, train, run, status, demo, serve];
