// SPDX-License-Identifier: MIT
// In-memory tensors: the one representation shared by io, soup, train and native.
// bf16 and fp16 travel as Uint16Array (ORT's convention); data is never copied behind the caller's back.

export type DType = 'float32' | 'float16' | 'bfloat16' | 'float64';
export type TensorData = Float32Array | Uint16Array | Float64Array;

export interface Tensor {
  dtype: DType;
  shape: number[];
  data: TensorData;
}
export type TensorMap = Record<string, Tensor>;

/** safetensors dtype names for the float dtypes the merge engine handles. */
export const SAFETENSORS_DTYPE: Record<DType, string> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16', float64: 'F64' };
/** Every dtype the safetensors format defines, with its element size in bytes. */
export const SAFETENSORS_SIZES: Record<string, number> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
};
const FROM_SAFETENSORS: Record<string, DType> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16', F64: 'float64' };

export function dtypeFromSafetensors(name: string): DType | undefined {
  return FROM_SAFETENSORS[name];
}

export const DTYPES: readonly DType[] = ['float32', 'float16', 'bfloat16', 'float64'];
/** Codes shared with native (native/core/dtype.h). */
export const DTYPE_CODE: Record<DType, number> = { float32: 0, float16: 1, bfloat16: 2, float64: 3 };

export function dtypeSize(d: DType): number {
  return d === 'float64' ? 8 : d === 'float32' ? 4 : 2;
}

export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}

export function isDType(x: unknown): x is DType {
  return typeof x === 'string' && (DTYPES as readonly string[]).includes(x);
}

/** A typed-array view of the right class for `dtype` over bytes [byteOffset, byteOffset + numel·size). */
export function viewAs(dtype: DType, buffer: ArrayBufferLike, byteOffset: number, numel: number): TensorData {
  switch (dtype) {
    case 'float32':
      return new Float32Array(buffer, byteOffset, numel);
    case 'float64':
      return new Float64Array(buffer, byteOffset, numel);
    default:
      return new Uint16Array(buffer, byteOffset, numel);
  }
}

export function expectedArrayClass(dtype: DType): string {
  return dtype === 'float32' ? 'Float32Array' : dtype === 'float64' ? 'Float64Array' : 'Uint16Array';
}

// ---- exact scalar conversions (round to nearest even, as torch) ----------------------------------
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function bf16ToF32(h: number): number {
  u32[0] = h << 16;
  return f32[0];
}

export function f32ToBf16(x: number): number {
  f32[0] = x;
  const u = u32[0];
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Rounds a double to the nearest fp16 (ties to even), returning the bit pattern. */
export function f64ToF16(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= 65520) return sign | 0x7c00;
  if (a < 2 ** -14) {
    // subnormal: units of 2^-24
    const q = roundHalfEven(a * 2 ** 24);
    return sign | q;
  }
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  if (2 ** (e + 1) <= a) e++;
  let m = roundHalfEven((a / 2 ** e - 1) * 1024);
  if (m === 1024) {
    m = 0;
    e++;
  }
  if (e > 15) return sign | 0x7c00;
  return sign | ((e + 15) << 10) | m;
}

/** Rounds a double to the nearest bf16 (ties to even), exactly (no double rounding through fp32). */
export function f64ToBf16(x: number): number {
  if (Number.isNaN(x)) return 0x7fc0;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a === 0) return sign;
  // bf16 has fp32's exponent range: 8 significant bits, subnormals in units of 2^-133
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  if (2 ** (e + 1) <= a) e++;
  if (e < -126) {
    const q = roundHalfEven(a * 2 ** 133);
    return sign | q; // q <= 128 carries into the smallest normal naturally
  }
  let m = roundHalfEven((a / 2 ** e - 1) * 128);
  let ee = e;
  if (m === 128) {
    m = 0;
    ee++;
  }
  if (ee > 127) return sign | 0x7f80;
  return sign | ((ee + 127) << 7) | m;
}

export function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** Reads element i of a tensor as a double (exact widening). */
export function elementAt(t: Tensor, i: number): number {
  const v = t.data[i];
  if (t.dtype === 'bfloat16') return bf16ToF32(v);
  if (t.dtype === 'float16') return f16ToF32(v);
  return v;
}

/** A float32 copy of any float tensor (exact widening). */
export function toFloat32(t: Tensor): Float32Array {
  if (t.dtype === 'float32') return t.data as Float32Array;
  const out = new Float32Array(t.data.length);
  for (let i = 0; i < out.length; i++) out[i] = elementAt(t, i);
  return out;
}
