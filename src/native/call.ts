// SPDX-License-Identifier: MIT
// One wrapper for every call into the addons (sharp's `nativeError` idea): errors thrown or rejected by
// native code ("[ERR_SOUP_*] message") become SoupErrors with the caller's stack; long calls get the
// shared [cancel, bytesDone] slots wired to an AbortSignal and copy the kernel's stats back.
import { SoupError, fromNative } from '../errors.js';

/** A Float64Array [cancel, bytesDone] shared with native, wired to an AbortSignal. */
export function controlFor(signal?: AbortSignal): { control: Float64Array; dispose(): void } {
  const control = new Float64Array(2);
  if (!signal) return { control, dispose() {} };
  if (signal.aborted) control[0] = 1;
  const onAbort = () => (control[0] = 1);
  signal.addEventListener('abort', onAbort, { once: true });
  return { control, dispose: () => signal.removeEventListener('abort', onAbort) };
}

export function abortedError(signal?: AbortSignal): SoupError {
  const reason = signal?.reason instanceof Error ? `: ${signal.reason.message}` : typeof signal?.reason === 'string' ? `: ${signal.reason}` : '';
  return new SoupError('ERR_SOUP_ABORTED', `aborted${reason}`);
}

/** Options of a long native call. */
export interface NativeCallOptions {
  /** Sets the cancel slot; the call rejects with ERR_SOUP_ABORTED (naming the signal's reason). */
  signal?: AbortSignal;
  /** Receives the call's result fields (the kernel's own timing and path). */
  stats?: object;
}

/**
 * Awaits `fn()`; a native error becomes a SoupError stamped with `callSite`'s stack (an Error made where
 * the user called, whose stack V8 formats only on failure). With `o`, `fn` gets the control slots.
 */
export async function callNative<T>(fn: (control: Float64Array) => Promise<T>, o: NativeCallOptions = {}, callSite: Error = new Error()): Promise<T> {
  const { control, dispose } = controlFor(o.signal);
  if (o.signal?.aborted) throw abortedError(o.signal);
  try {
    const r = await fn(control);
    if (o.stats && typeof r === 'object' && r) Object.assign(o.stats, r);
    return r;
  } catch (e) {
    const err = fromNative(e, callSite);
    // a cancel this call's signal asked for names the signal's reason; one set by the caller's own slots keeps native's words
    if (err.code === 'ERR_SOUP_ABORTED' && o.signal) throw abortedError(o.signal);
    throw err;
  } finally {
    dispose();
  }
}

/** A synchronous native call, its errors mapped as callNative's. */
export function callNativeSync<T>(fn: () => T, callSite: Error = new Error()): T {
  try {
    return fn();
  } catch (e) {
    throw fromNative(e, callSite);
  }
}
