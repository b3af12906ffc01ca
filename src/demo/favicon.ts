/**
 * The demo's favicon: a 16×16 ICO drawn here (a blue tile with three white bars, the shards), so
 * the demo ships no binary file. An ICO of one 32-bit BMP image: the icon directory, the bitmap
 * header, the pixels bottom-up in BGRA, then the 1-bit AND mask (unused with alpha: all zero).
 */
const SIZE = 16;
const ACCENT = [0x2f, 0x6f, 0xed] as const; // #2f6fed, the page's accent

function pixel(x: number, y: number): readonly [r: number, g: number, b: number, a: number] {
  // Rounded corners: the three pixels of each corner stay transparent.
  const cx = Math.min(x, SIZE - 1 - x);
  const cy = Math.min(y, SIZE - 1 - y);
  if (cx + cy < 2) return [0, 0, 0, 0];
  const bar = x >= 4 && x <= 11 && (y === 4 || y === 5 || y === 7 || y === 8 || y === 10 || y === 11);
  return bar ? [255, 255, 255, 255] : [...ACCENT, 255];
}

function drawIco(): Buffer {
  const pixels = SIZE * SIZE * 4;
  const mask = SIZE * 4; // one bit a pixel, rows padded to 32 bits
  const image = 40 + pixels + mask;
  const ico = Buffer.alloc(6 + 16 + image);
  ico.writeUInt16LE(1, 2); // type: icon
  ico.writeUInt16LE(1, 4); // one image
  ico.writeUInt8(SIZE, 6);
  ico.writeUInt8(SIZE, 7);
  ico.writeUInt16LE(1, 10); // planes
  ico.writeUInt16LE(32, 12); // bits per pixel
  ico.writeUInt32LE(image, 14);
  ico.writeUInt32LE(22, 18); // where the image starts
  ico.writeUInt32LE(40, 22); // BITMAPINFOHEADER
  ico.writeInt32LE(SIZE, 26);
  ico.writeInt32LE(SIZE * 2, 30); // the colour rows and the mask rows
  ico.writeUInt16LE(1, 34);
  ico.writeUInt16LE(32, 36);
  ico.writeUInt32LE(pixels + mask, 42);
  let at = 62;
  for (let y = SIZE - 1; y >= 0; y--) {
    for (let x = 0; x < SIZE; x++) {
      const [r, g, b, a] = pixel(x, y);
      ico[at++] = b;
      ico[at++] = g;
      ico[at++] = r;
      ico[at++] = a;
    }
  }
  return ico;
}

export const FAVICON_ICO: Buffer = drawIco();
