// SPDX-License-Identifier: MIT
// Ctrl-C cancels long work cleanly (temporary files removed); a second Ctrl-C exits at once. Both exit
// 130: the cancelled work throws ERR_SOUP_ABORTED, which main.ts maps to 130, like the second signal.
export async function withSigint<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  let count = 0;
  const onSig = (sig: NodeJS.Signals) => {
    count++;
    if (count > 1) process.exit(130);
    process.stderr.write(`\nrsoup: ${sig}: cancelling (press Ctrl-C again to exit at once)\n`);
    ac.abort(new Error(`interrupted by ${sig}`));
  };
  process.on('SIGINT', onSig);
  process.on('SIGTERM', onSig);
  try {
    return await fn(ac.signal);
  } finally {
    process.off('SIGINT', onSig);
    process.off('SIGTERM', onSig);
  }
}
