// judge-jaccard in JavaScript: the Shannon-Prime deterministic recall gate.
//
// The same algorithm as plugins/judge-jaccard (Rust): a candidate is accepted
// when the Jaccard overlap of its content tokens with the query's reaches 0.6.
// Content tokens are lowercased alphanumeric runs (dots, colons and
// apostrophes kept inside a run, so `10.0.0.7` is one token), with a
// possessive `'s` and a plural `s` stripped, minus a small stop-word list.

const THRESHOLD = 0.6;

const STOP_WORDS = new Set([
  "a", "an", "and", "are", "as", "at", "be", "by", "did", "do", "does", "for", "from", "has",
  "have", "i", "in", "is", "it", "its", "me", "my", "of", "on", "or", "our", "so", "that", "the",
  "their", "this", "to", "was", "we", "were", "what", "when", "where", "which", "who", "why",
  "how", "with", "you", "your", "tell", "please", "can", "could", "would", "again",
]);

function trimChars(s, chars) {
  let a = 0;
  let b = s.length;
  while (a < b && chars.includes(s[a])) a++;
  while (b > a && chars.includes(s[b - 1])) b--;
  return s.slice(a, b);
}

// Letters (any script with case, plus ASCII) and ASCII digits. The SpiderMonkey
// build inside componentize-js has no Unicode property escapes (\p{L}).
function isLetter(c) {
  return (c >= "a" && c <= "z") || c.toLowerCase() !== c.toUpperCase();
}
function isAlnum(c) {
  return isLetter(c) || (c >= "0" && c <= "9");
}

function splitRuns(text) {
  const runs = [];
  let cur = "";
  for (const c of text) {
    if (isAlnum(c) || c === "." || c === ":" || c === "'") {
      cur += c;
    } else {
      runs.push(cur);
      cur = "";
    }
  }
  runs.push(cur);
  return runs;
}

function contentTokens(text) {
  const out = new Set();
  for (const raw of splitRuns(text.toLowerCase())) {
    let t = trimChars(raw, ".:'");
    if (t.endsWith("'s")) t = t.slice(0, -2);
    while (t.endsWith("'")) t = t.slice(0, -1);
    if (!t || STOP_WORDS.has(t)) continue;
    if (t.length > 3 && t.endsWith("s") && !t.endsWith("ss") && [...t].every(isLetter)) {
      t = t.slice(0, -1);
    }
    out.add(t);
  }
  return out;
}

export const judging = {
  judge(query, candidates) {
    const q = contentTokens(query);
    return candidates.map((cand) => {
      const c = contentTokens(cand.text);
      const shared = [...q].filter((t) => c.has(t)).sort();
      const union = new Set([...q, ...c]).size;
      const overlap = union === 0 ? 0 : shared.length / union;
      return {
        accept: overlap >= THRESHOLD,
        confidence: overlap,
        evidence: `jaccard ${overlap.toFixed(3)} on [${shared.join(", ")}]`,
      };
    });
  },
};
