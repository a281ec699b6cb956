// SPDX-License-Identifier: MIT
// One error vocabulary for the whole library: every failure a user can act on is a SoupError with a
// stable `code`. Native code throws plain Errors whose message starts with "[ERR_SOUP_...]"; the
// native layer maps them back to SoupError (see src/native/index.ts).

export type SoupErrorCode =
  | 'ERR_SOUP_INVALID_ARG'
  | 'ERR_SOUP_FORMAT'
  | 'ERR_SOUP_SHAPE_MISMATCH'
  | 'ERR_SOUP_DTYPE_MISMATCH'
  | 'ERR_SOUP_MISSING_TENSOR'
  | 'ERR_SOUP_WEIGHTS'
  | 'ERR_SOUP_IO'
  | 'ERR_SOUP_ABORTED'
  | 'ERR_SOUP_BUSY'
  | 'ERR_SOUP_NO_CUDA'
  | 'ERR_SOUP_NATIVE_LOAD'
  | 'ERR_SOUP_OOM'
  | 'ERR_SOUP_TOO_LARGE'
  | 'ERR_SOUP_CONFIG'
  | 'ERR_SOUP_REWARD'
  | 'ERR_SOUP_TRAIN'
  | 'ERR_SOUP_INTERNAL';

export class SoupError extends Error {
  readonly code: SoupErrorCode;
  constructor(code: SoupErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SoupError';
    this.code = code;
  }
}

const CODE_PREFIX = /^\[(ERR_SOUP_[A-Z_]+)\]\s*/;

/** Turns an error thrown by native code into a SoupError, re-stamping the caller's stack (sharp's trick). */
export function fromNative(err: unknown, caller?: string | Error): SoupError {
  if (err instanceof SoupError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const m = CODE_PREFIX.exec(message);
  const code = (m ? m[1] : 'ERR_SOUP_INTERNAL') as SoupErrorCode;
  const out = new SoupError(code, m ? message.slice(m[0].length) : message, { cause: err });
  // an Error made at the call site: V8 formats its stack only now, on failure
  const callerStack = caller instanceof Error ? caller.stack : caller;
  if (callerStack) out.stack = `${out.name}: ${out.message}\n${callerStack.split('\n').slice(1).join('\n')}`;
  return out;
}

export function isAbortError(err: unknown): boolean {
  return err instanceof SoupError && err.code === 'ERR_SOUP_ABORTED';
}
