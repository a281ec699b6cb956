// SPDX-License-Identifier: MIT
// The mujoco-js (official MuJoCo 3.3 WASM) module: loaded once per thread, models compiled from MJCF
// text with MuJoCo's own error message, and field views cached per MjData.
//
// NOTE: [WASM heap views] `d.qpos`, `d.ctrl`, ... are Float64Array views into the WASM heap, made anew
// by every property read (slow in a hot loop). When the heap grows (a new MjData, a model load) the old
// ArrayBuffer is detached and every cached view reads as length 0. `DataViews.fresh()` checks one view
// and refetches them all, so hot loops cache views and call it once per step.
import { readFileSync } from 'node:fs';
import type { MainModule, MjData, MjModel } from 'mujoco-js';
import { SoupError } from '../errors.js';

export type Mujoco = MainModule;
export type { MjData, MjModel };

let modulePromise: Promise<Mujoco> | undefined;
let fsCounter = 0;
// Emscripten binds `print` once at start-up, so the hook reads a sink that compileMjcf sets.
let printSink: string[] | null = null;

/** The MuJoCo WASM module of this thread (instantiated once; ~0.3 s the first time). */
export function loadMujoco(): Promise<Mujoco> {
  modulePromise ??= (async () => {
    const { default: factory } = await import('mujoco-js');
    // MuJoCo prints load errors to stdout; we read them from the exception instead (see compileMjcf).
    const hook = (line: string): void => {
      printSink?.push(line);
    };
    const mj = await factory({ print: hook, printErr: hook });
    mj.FS.mkdir('/rsoup');
    return mj;
  })();
  return modulePromise;
}

/** A C string at `ptr` in the WASM heap (the heap is reached through a small buffer's view). */
function heapString(mj: Mujoco, ptr: number, max: number): string {
  const buf = new mj.DoubleBuffer(1);
  const heap = new Uint8Array((buf.GetView() as Float64Array).buffer);
  buf.delete();
  let end = ptr;
  while (end < ptr + max && end < heap.length && heap[end] !== 0) end++;
  return Buffer.from(heap.subarray(ptr, end)).toString('utf8');
}

/**
 * Compiles MJCF text into a model. `label` names the file in errors. A model MuJoCo rejects becomes a
 * SoupError ERR_SOUP_FORMAT carrying MuJoCo's message (parse errors come back as a null model with the
 * message on stdout; compile errors as a C++ mjCError/mjXError whose first field is the message).
 */
export function compileMjcf(mj: Mujoco, xml: string, label: string): MjModel {
  const path = `/rsoup/model_${fsCounter++}.xml`;
  mj.FS.writeFile(path, xml);
  const captured: string[] = [];
  let model: MjModel | null = null;
  let detail = '';
  try {
    printSink = captured;
    model = mj.MjModel.loadFromXML(path);
  } catch (err) {
    const exc = err as { excPtr?: number; name?: string };
    if (typeof exc?.excPtr === 'number') {
      // mjCError { char message[500]; ... }, mjXError { char message[1000]; }
      detail = heapString(mj, exc.excPtr, 1000);
      try {
        (Reflect.get(mj, 'decrementExceptionRefcount') as (e: unknown) => void).call(mj, err);
      } catch {
        // the message is what matters; a leaked exception object is a few bytes
      }
    } else {
      detail = err instanceof Error ? err.message : String(err);
    }
  } finally {
    printSink = null;
    mj.FS.unlink(path);
  }
  if (!model) {
    if (!detail) detail = captured.join('\n').replace(/^Loading error:\s*/, '');
    detail = detail.replace(/\/rsoup\/model_\d+\.xml/g, label).trim() || 'MuJoCo returned no model';
    throw new SoupError('ERR_SOUP_FORMAT', `MJCF model ${label} failed to load: ${detail}`);
  }
  return model;
}

/** Reads an MJCF file from disk and compiles it; missing/unreadable files are ERR_SOUP_IO. */
export function readMjcf(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new SoupError('ERR_SOUP_IO', `MJCF model ${file} could not be read (${code})`, { cause: err });
  }
}

/** Cached Float64Array views of one MjData (see NOTE: [WASM heap views]). */
export class DataViews {
  qpos!: Float64Array;
  qvel!: Float64Array;
  ctrl!: Float64Array;
  xpos!: Float64Array;
  geomXpos!: Float64Array;
  geomXmat!: Float64Array;
  constructor(readonly data: MjData) {
    this.refetch();
  }
  refetch(): void {
    const d = this.data;
    this.qpos = d.qpos;
    this.qvel = d.qvel;
    this.ctrl = d.ctrl;
    this.xpos = d.xpos;
    this.geomXpos = d.geom_xpos;
    this.geomXmat = d.geom_xmat;
  }
  /** Refetches the views if the heap grew since they were taken. */
  fresh(): this {
    if (this.qpos.length === 0) this.refetch();
    return this;
  }
}
