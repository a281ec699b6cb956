// SPDX-License-Identifier: MIT
// The training functions of soup_torch.node, by name: declared with their batons in src/native/torch.ts
// (the one typed face of the addon), called through its one wrapper (errors → SoupError with the
// caller's stack).
export { callTorch as callNative, callTorchSync as callNativeSync } from '../native/torch.js';
export type { ModelHandle, TensorGroup, NativeLlamaConfig, NativeGenOptions, NativeGenResult } from '../native/torch.js';
