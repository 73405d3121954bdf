// Builds the vendored front-end files from the packages pinned in package-lock.json
// (run by `make vendor`, after `npm ci`):
//
//   docs/assets/vendor/codemirror.js   one ES module with the parts of CodeMirror 6 the
//                                      Run widget uses (editor, Python mode, history)
//   tests/browser/vendor/axe.min.js    axe-core, for the accessibility tests only
//
// The bundle starts with a comment naming every package it was built from and its
// version; tests/test_vendor.py compares that list with package-lock.json, so a
// lockfile change without a rebuild (or a hand-edited bundle) fails the tests.
// This file is excluded from the published site (mkdocs.yml, exclude_docs).

import { build } from "esbuild";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..", "..");
const lock = JSON.parse(readFileSync(join(root, "package-lock.json"), "utf8"));

// Exactly what docs/assets/workshop-run.js imports.
const entry = `
export { EditorState, Compartment } from "@codemirror/state";
export { EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter,
  highlightSpecialChars, drawSelection } from "@codemirror/view";
export { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
export { HighlightStyle, LanguageSupport, syntaxHighlighting, indentOnInput, bracketMatching, indentUnit } from "@codemirror/language";
export { pythonLanguage } from "@codemirror/lang-python";
export { tags } from "@lezer/highlight";
`;

const result = await build({
  stdin: { contents: entry, resolveDir: root, sourcefile: "codemirror-entry.js", loader: "js" },
  bundle: true,
  format: "esm",
  target: "es2020",
  minify: true,
  legalComments: "none",
  metafile: true,
  write: false,
  logLevel: "warning",
});

// node_modules/@scope/name/... -> @scope/name
function packageOf(path) {
  const parts = relative(root, path).split(sep);
  const at = parts.lastIndexOf("node_modules");
  if (at < 0) return null;
  const name = parts[at + 1].startsWith("@") ? parts.slice(at + 1, at + 3).join("/") : parts[at + 1];
  return { name, key: parts.slice(0, at + 1).join("/") + "/" + name };
}

const versions = {};
for (const input of Object.keys(result.metafile.inputs)) {
  const pkg = packageOf(join(root, input));
  if (!pkg) continue;
  const locked = lock.packages[pkg.key];
  if (!locked) throw new Error(`${pkg.key} is bundled but not in package-lock.json`);
  versions[pkg.name] = locked.version;
}
const sorted = Object.fromEntries(Object.entries(versions).sort(([a], [b]) => a.localeCompare(b)));
const banner =
  "/* CodeMirror 6 for the Run widget, built by `make vendor` from package-lock.json; do not edit.\n" +
  ` * packages: ${JSON.stringify(sorted)}\n */\n`;

const out = join(root, "docs", "assets", "vendor", "codemirror.js");
writeFileSync(out, banner + result.outputFiles[0].text);
console.log(`wrote ${relative(root, out)} (${Object.keys(sorted).length} packages)`);

const axeOut = join(root, "tests", "browser", "vendor", "axe.min.js");
mkdirSync(dirname(axeOut), { recursive: true });
copyFileSync(join(root, "node_modules", "axe-core", "axe.min.js"), axeOut);
console.log(`wrote ${relative(root, axeOut)} (axe-core ${lock.packages["node_modules/axe-core"].version})`);
