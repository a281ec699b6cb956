// SPDX-License-Identifier: MIT
// Text <-> token ids for the server: the model dir's tokenizer.json, or (synthetic models without one:
// benchmarks) a byte codec (id = byte + 3 after <pad> <s> </s>; ids past the bytes decode to nothing).
import type { Tokenizer } from 'tokenizers';

export interface TextCodec {
  encode(text: string): Promise<number[]>;
  decode(ids: number[]): Promise<string>;
  readonly bos?: number;
  readonly eos?: number;
}

export function tokenizerCodec(tok: Tokenizer, ids: { bos?: number; eos?: number }): TextCodec {
  return {
    bos: ids.bos,
    eos: ids.eos,
    async encode(text) {
      return (await tok.encode(text)).getIds();
    },
    decode(ids) {
      return tok.decode(ids, true);
    },
  };
}

export function byteCodec(vocabSize: number, o: { eos?: boolean } = {}): TextCodec {
  const OFF = 3;
  return {
    bos: 1,
    eos: o.eos === false ? undefined : 2,
    async encode(text) {
      return Array.from(Buffer.from(text, 'utf8'), (b) => Math.min(b + OFF, vocabSize - 1));
    },
    async decode(ids) {
      return Buffer.from(ids.filter((i) => i >= OFF && i < OFF + 256).map((i) => i - OFF)).toString('utf8');
    },
  };
}
