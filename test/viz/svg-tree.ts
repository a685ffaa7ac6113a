/** Test helper: parse SVG/XML strictly with fast-xml-parser into a small element tree to query. */
import { XMLParser, XMLValidator } from "fast-xml-parser";

export interface El {
  tag: string;
  attrs: Record<string, string>;
  children: El[];
  /** Concatenated text of this element's direct text nodes (entities decoded). */
  text: string;
}

type Raw = Record<string, unknown>;

function convert(node: Raw): El | null {
  const tag = Object.keys(node).find((k) => k !== ":@");
  if (!tag || tag === "#text") return null;
  const attrs: Record<string, string> = {};
  for (const [k, v] of Object.entries((node[":@"] as Raw | undefined) ?? {}))
    attrs[k.replace(/^@_/, "")] = String(v);
  const rawChildren = node[tag] as Raw[];
  const children: El[] = [];
  let text = "";
  for (const c of rawChildren) {
    if ("#text" in c) text += String(c["#text"]);
    else {
      const el = convert(c);
      if (el) children.push(el);
    }
  }
  return { tag, attrs, children, text };
}

/** Throws if `xml` is not well-formed; returns the root element. */
export function parseSvg(xml: string): El {
  const valid = XMLValidator.validate(xml);
  if (valid !== true) throw new Error(`invalid XML: ${JSON.stringify(valid.err)}`);
  const parser = new XMLParser({
    preserveOrder: true,
    ignoreAttributes: false,
    attributeNamePrefix: "@_",
    parseAttributeValue: false,
    parseTagValue: false,
    trimValues: false,
    processEntities: true,
    htmlEntities: true,
  });
  const nodes = parser.parse(xml) as Raw[];
  const roots = nodes.map(convert).filter((e): e is El => e !== null && e.tag === "svg");
  if (roots.length !== 1) throw new Error(`expected one <svg> root, found ${roots.length}`);
  return roots[0];
}

export function findAll(root: El, pred: (el: El) => boolean): El[] {
  const out: El[] = [];
  const walk = (el: El) => {
    if (pred(el)) out.push(el);
    el.children.forEach(walk);
  };
  walk(root);
  return out;
}

export const hasClass = (el: El, cls: string): boolean => (el.attrs.class ?? "").split(/\s+/).includes(cls);

/** Items (path/line/etc. children) of Vega's mark group with the given class, e.g. "mark-rect role-mark". */
export function vegaMarkItems(root: El, markClass: string): El[] {
  return findAll(root, (el) => el.tag === "g" && (el.attrs.class ?? "").startsWith(markClass)).flatMap(
    (g) => g.children,
  );
}

/** Text of all <text> elements under groups whose class starts with `groupClass` (e.g. "mark-text role-axis-label"). */
export function vegaTexts(root: El, groupClass: string): string[] {
  return findAll(root, (el) => el.tag === "g" && (el.attrs.class ?? "").startsWith(groupClass)).flatMap((g) =>
    findAll(g, (el) => el.tag === "text").map((t) => t.text),
  );
}
