// SPDX-License-Identifier: MIT
// The part of pngjs (no bundled types) that the image grid uses.
declare module 'pngjs' {
  export class PNG {
    constructor(o: { width: number; height: number });
    width: number;
    height: number;
    data: Buffer;
    static sync: { write(png: PNG): Buffer; read(buf: Buffer): PNG };
  }
}
