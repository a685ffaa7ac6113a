/**
 * Text normalisation before tokenizing. GPT-2's pre-tokenizer splits contractions (`'s`, `'t`, `'re`...)
 * only when written with the ASCII apostrophe, so "don’t" would tokenize unlike "don't" and a neuron's
 * examples would depend on the typography of the source. We map typographic quotes to ASCII and use NFC
 * so composed and decomposed accents give the same tokens.
 */
const SINGLE_QUOTES = /[\u2018\u2019\u201A\u201B\u2032\u02BC]/g; // ‘ ’ ‚ ‛ ′ ʼ
const DOUBLE_QUOTES = /[\u201C\u201D\u201E\u201F\u2033]/g; // “ ” „ ‟ ″

export function normalizeText(text: string): string {
  return text
    .normalize("NFC")
    .replace(SINGLE_QUOTES, "'")
    .replace(DOUBLE_QUOTES, '"')
    .replace(/\r\n?/g, "\n");
}

/**
 * Split a document into chunks that tokenize to the same tokens separately as together: cuts go just
 * before a whitespace run that contains a blank line, which GPT-2's pre-tokenizer always treats as a
 * boundary (the run is never merged with the word before it). Lets a long document be tokenized piece
 * by piece without holding all of its tokens at once.
 */
export function* splitAtParagraphs(text: string): Generator<string> {
  const blankLineRun = /\s*\n[^\S\n]*\n\s*/g;
  let start = 0;
  for (const m of text.matchAll(blankLineRun)) {
    if (m.index > start) {
      yield text.slice(start, m.index);
      start = m.index;
    }
  }
  if (start < text.length) yield text.slice(start);
}
