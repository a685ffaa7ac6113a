/**
 * How tokens are written everywhere (figure axes, tooltips, captions, SVG, CLI tables, explorer inputs), so
 * one token reads the same wherever it appears:
 * - a space is `·` (GPT-2 and Llama tokens usually start with one, and an invisible leading space is a
 *   classic source of confusion), a newline `↵`, a tab `⇥`, other control characters `<0xNN>`;
 * - tokenizer pieces are accepted raw too: byte-level BPE (`Ġthe`, `Ċ`) and SentencePiece (`▁the`) spaces
 *   become `·`; byte pieces that are not a whole character show as `<0xNN>`;
 * - an empty token is `∅`, never `""`.
 */

/** GPT-2's byte <-> printable-character table (bytes_to_unicode): printable Latin-1 maps to itself. */
export const BYTE_OF_CHAR: Map<string, number> = (() => {
  const direct: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) direct.push(b);
  for (let b = 0xa1; b <= 0xac; b++) direct.push(b);
  for (let b = 0xae; b <= 0xff; b++) direct.push(b);
  const map = new Map<string, number>();
  let shifted = 0;
  for (let b = 0; b < 256; b++) {
    if (direct.includes(b)) map.set(String.fromCharCode(b), b);
    else map.set(String.fromCharCode(256 + shifted++), b);
  }
  return map;
})();

const SENTENCEPIECE_BYTE = /^<0x([0-9A-Fa-f]{2})>$/;

function byteEscape(b: number): string {
  return `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`;
}

/** Bytes as text when they are valid UTF-8, otherwise one `<0xNN>` escape per byte. */
export function bytesToText(bytes: readonly number[]): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(Uint8Array.from(bytes));
  } catch {
    return bytes.map(byteEscape).join("");
  }
}

/**
 * A raw byte-level BPE piece (`Ġthe`, `ĊĊ`) is recognised by its space, newline or tab character; decoded
 * text never contains those (Ġ Ċ ĉ are not used in running text), while other table characters such as
 * `ł` are ordinary letters in decoded tokens and must stay as they are.
 */
function byteLevelPiece(token: string): number[] | null {
  if (!/[\u0120\u010a\u0109]/.test(token)) return null;
  const bytes: number[] = [];
  for (const ch of token) {
    const b = BYTE_OF_CHAR.get(ch);
    if (b === undefined) return null;
    bytes.push(b);
  }
  return bytes;
}

/** The text a token stands for: raw tokenizer pieces decoded, bytes that are not a whole character escaped. */
export function tokenText(token: string): string {
  const sp = SENTENCEPIECE_BYTE.exec(token);
  if (sp) return bytesToText([Number.parseInt(sp[1], 16)]);
  const bytes = byteLevelPiece(token);
  if (bytes) return bytesToText(bytes);
  return token.replace(/\u2581/g, " ");
}

/** One token as it is shown everywhere (see the module comment). */
export function formatToken(token: string): string {
  if (token.length === 0) return "∅";
  return tokenText(token)
    .replace(/\r\n|\r|\n/g, "↵")
    .replace(/\t/g, "⇥")
    .replace(/ /g, "·")
    .replace(/[^\P{Cc}]/gu, (c) => byteEscape(c.charCodeAt(0)));
}
