// Build the JavaScript judge component through componentize-js's
// `componentize()` API (the `jco componentize` CLI fails on Node 20), with
// every WASI feature disabled: the judge world has no WASI.
//
//   node build.mjs [out.wasm]     (default: ./judge_js.wasm)
import { componentize } from "@bytecodealliance/componentize-js";
import { readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { dirname, resolve } from "node:path";

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? resolve(here, "judge_js.wasm"));
const source = await readFile(resolve(here, "judge.js"), "utf8");
const { component } = await componentize(source, {
  witPath: resolve(here, "../../wit"),
  worldName: "judge",
  disableFeatures: ["stdio", "random", "clocks", "http", "fetch-event"],
});
await writeFile(out, component);
console.log(`wrote ${out} (${component.length} bytes)`);
