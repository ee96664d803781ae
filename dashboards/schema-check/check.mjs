// Checks Grafana dashboard JSON files against Grafana's published schema, the npm package
// @grafana/schema (pinned in package.json / package-lock.json beside this file).
//
// The package ships no JSON Schema: it ships TypeScript types generated from Grafana's CUE
// schemas (Dashboard, Panel, FieldConfig, ... and one Options/FieldConfig pair per panel
// plugin). So for each dashboard this writes a .ts file that assigns the JSON, as object
// literals, to those types, and runs `tsc --noEmit --strict` on it. tsc's object-literal checks
// then reject a wrong field type, an unknown field (excess property) and a bad enum value:
//   - the dashboard as a whole: JsonOf<Dashboard>;
//   - each panel's `options` and `fieldConfig.defaults.custom`: the Options and FieldConfig of
//     its panel plugin (timeseries, stat, table, ...), which Dashboard leaves untyped;
//   - each panel's targets: PrometheusQuery (grafana-json.ts), which Dashboard leaves untyped.
// A panel type with no schema in the package is an error, so nothing goes unchecked.
// On top of the schema it checks derpkit's own rules (policyErrors below): every panel has a
// description and a unit, queries go through the `datasource` variable, and so on.
//
// Usage: node check.mjs --out DIR FILE.json...   (DIR: where the generated .ts files go)
//        node check.mjs --out DIR --self-test FILE.json
// The self-test proves the check can fail: it writes deliberately broken copies of FILE (one
// fault each) and requires each to be rejected with a message naming the fault, and the
// unbroken FILE to pass. Exit status 0 when everything passed, 1 otherwise, 2 for bad usage.
//
// Thread/ownership: a single-threaded script run by dashboards/tests/schema_test.sh.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const schemaDir = path.join(here, 'node_modules', '@grafana', 'schema');
const tscPath = path.join(here, 'node_modules', 'typescript', 'bin', 'tsc');

// Grafana 11.0 wrote schemaVersion 39; newer than the pinned package's own is not "current".
const kMinSchemaVersion = 39;

function usage(message) {
  console.error(`check.mjs: ${message}`);
  console.error('usage: node check.mjs --out DIR [--self-test] FILE.json...');
  process.exit(2);
}

function parseArgs(argv) {
  const args = { out: '', selfTest: false, files: [] };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--out') args.out = argv[++i] ?? '';
    else if (argv[i] === '--self-test') args.selfTest = true;
    else if (argv[i].startsWith('-')) usage(`unknown flag ${argv[i]}`);
    else args.files.push(argv[i]);
  }
  if (!args.out) usage('--out DIR is required');
  if (args.files.length === 0) usage('no dashboard file given');
  return args;
}

// panel type id -> { importPath, hasFieldConfig } for every panel plugin the package types.
function panelSchemas() {
  const pkg = JSON.parse(fs.readFileSync(path.join(schemaDir, 'package.json'), 'utf8'));
  const byDir = new Map();
  for (const key of Object.keys(pkg.exports)) {
    const m = key.match(/^\.\/dist\/esm\/raw\/composable\/([a-z0-9]+)\/panelcfg\/x\/\w+_types\.gen$/);
    if (m) byDir.set(m[1], `@grafana/schema${key.slice(1)}`);
  }
  const schemas = new Map();
  for (const [dir, importPath] of byDir) {
    const dts = path.join(schemaDir, 'dist/types/raw/composable', dir, 'panelcfg/x/types.gen.d.ts');
    const text = fs.readFileSync(dts, 'utf8');
    if (!/export interface Options\b/.test(text)) continue;
    const entry = { importPath, hasFieldConfig: /export interface FieldConfig\b/.test(text) };
    // Panel ids with a dash are spelt without it in the package's folder names.
    const ids = { statetimeline: 'state-timeline', statushistory: 'status-history' };
    schemas.set(ids[dir] ?? dir, entry);
  }
  return schemas;
}

function packageSchemaVersion() {
  const js = fs.readFileSync(path.join(schemaDir, 'dist/esm/raw/dashboard/x/types.gen.mjs'), 'utf8');
  const m = js.match(/schemaVersion:\s*(\d+)/);
  if (!m) throw new Error('cannot find the default schemaVersion in @grafana/schema');
  return Number(m[1]);
}

// Every panel, rows' nested panels included, with a readable name for messages.
function allPanels(dashboard) {
  const out = [];
  for (const p of dashboard.panels ?? []) {
    out.push(p);
    if (p && p.type === 'row') for (const q of p.panels ?? []) out.push(q);
  }
  return out;
}
const panelName = (p) => `panel ${p?.id} "${p?.title ?? ''}"`;

// derpkit's rules beyond the schema.
function policyErrors(d, maxSchemaVersion) {
  const errors = [];
  if (typeof d.schemaVersion !== 'number' || d.schemaVersion < kMinSchemaVersion ||
      d.schemaVersion > maxSchemaVersion) {
    errors.push(`schemaVersion ${d.schemaVersion}: want ${kMinSchemaVersion} (Grafana 11) to ${maxSchemaVersion} (@grafana/schema)`);
  }
  if (typeof d.uid !== 'string' || d.uid.length < 8 || d.uid.length > 40) errors.push('uid: want 8 to 40 characters');
  if (!d.title) errors.push('no title');
  if (!d.description) errors.push('no dashboard description');
  const vars = d.templating?.list ?? [];
  const ds = vars.find((v) => v.name === 'datasource');
  if (!ds || ds.type !== 'datasource' || ds.query !== 'prometheus') {
    errors.push('templating: want a variable "datasource" of type datasource, query prometheus');
  }
  const instance = vars.find((v) => v.name === 'instance');
  if (!instance || instance.type !== 'query') errors.push('templating: want a query variable "instance"');
  for (const v of vars.filter((x) => x.type === 'query')) {
    if (v.datasource?.uid !== '${datasource}') errors.push(`variable ${v.name}: datasource must be \${datasource}`);
  }
  const ids = new Set();
  for (const p of allPanels(d)) {
    const name = panelName(p);
    if (typeof p.id !== 'number') errors.push(`${name}: no numeric id`);
    else if (ids.has(p.id)) errors.push(`${name}: id ${p.id} used twice`);
    ids.add(p.id);
    if (!p.gridPos) errors.push(`${name}: no gridPos`);
    if (p.type === 'row') continue;
    if (!p.title) errors.push(`${name}: no title`);
    if (!p.description || p.description.length < 40) errors.push(`${name}: no description (say what it means and what to do when it looks wrong)`);
    if (!p.fieldConfig?.defaults?.unit) errors.push(`${name}: no unit (fieldConfig.defaults.unit)`);
    if (!p.options) errors.push(`${name}: no options`);
    if (p.datasource?.uid !== '${datasource}' || p.datasource?.type !== 'prometheus') {
      errors.push(`${name}: datasource must be {type: prometheus, uid: \${datasource}}`);
    }
    const targets = p.targets ?? [];
    if (p.type !== 'text' && targets.length === 0) errors.push(`${name}: no targets`);
    const refIds = new Set();
    for (const t of targets) {
      if (!t.expr || typeof t.expr !== 'string') errors.push(`${name}: target ${t.refId} has no expr`);
      if (refIds.has(t.refId)) errors.push(`${name}: refId ${t.refId} used twice`);
      refIds.add(t.refId);
    }
  }
  return errors;
}

const lit = (value) => JSON.stringify(value, null, 2);

// The TypeScript source that makes tsc check one dashboard; null with errors when a panel type
// has no schema.
function tsSource(label, d, schemas) {
  const errors = [];
  const imports = new Map();
  const body = [];
  body.push(`export const dashboard: JsonOf<Dashboard> = ${lit(d)};`);
  for (const p of allPanels(d)) {
    if (!p || p.type === 'row') continue;
    const schema = schemas.get(p.type);
    if (!schema) {
      errors.push(`${panelName(p)}: panel type "${p.type}" has no schema in @grafana/schema`);
      continue;
    }
    const alias = `P_${p.type.replace(/-/g, '_')}`;
    imports.set(alias, schema.importPath);
    const id = `panel${p.id}`;
    body.push(`// ${panelName(p).replace(/\n/g, ' ')} (${p.type})`);
    body.push(`export const ${id}Options: JsonOf<${alias}.Options> = ${lit(p.options ?? {})};`);
    const custom = p.fieldConfig?.defaults?.custom;
    if (schema.hasFieldConfig) {
      body.push(`export const ${id}Custom: JsonOf<${alias}.FieldConfig> = ${lit(custom ?? {})};`);
    } else if (custom !== undefined && Object.keys(custom).length > 0) {
      errors.push(`${panelName(p)}: panel type "${p.type}" has no custom field config, yet fieldConfig.defaults.custom is set`);
    }
    body.push(`export const ${id}Targets: Array<JsonOf<PrometheusQuery>> = ${lit(p.targets ?? [])};`);
  }
  const head = [
    `// Generated by dashboards/schema-check/check.mjs from ${label}; do not edit.`,
    `import type { Dashboard } from '@grafana/schema';`,
    `import type { JsonOf, PrometheusQuery } from './grafana-json';`,
    ...[...imports].map(([alias, from]) => `import type * as ${alias} from '${from}';`),
  ];
  return { source: [...head, ...body, ''].join('\n'), errors };
}

// Runs tsc over `files` (names in outDir); returns Map(file -> [error lines]).
function runTsc(outDir, files) {
  const tsconfig = {
    compilerOptions: {
      strict: true, noEmit: true, target: 'es2022', module: 'node16', moduleResolution: 'node16',
      skipLibCheck: true, types: [], noErrorTruncation: false,
    },
    files: ['grafana-json.ts', ...files],
  };
  fs.writeFileSync(path.join(outDir, 'tsconfig.json'), JSON.stringify(tsconfig, null, 2));
  const r = spawnSync(process.execPath, [tscPath, '-p', path.join(outDir, 'tsconfig.json'), '--pretty', 'false'],
    { encoding: 'utf8', timeout: 240_000 });
  if (r.error) throw r.error;
  const byFile = new Map(files.map((f) => [f, []]));
  let last = null;
  for (const line of (r.stdout + r.stderr).split('\n')) {
    const m = line.match(/^(?:.*[\\/])?([^\\/()]+\.ts)\(\d+,\d+\): error /);
    if (m && byFile.has(m[1])) { last = m[1]; byFile.get(last).push(line); }
    else if (m) { last = null; byFile.set(m[1], [line]); }  // e.g. grafana-json.ts itself
    else if (line.trim() && last) byFile.get(last).push(line);
  }
  if (r.status !== 0 && [...byFile.values()].every((v) => v.length === 0)) {
    throw new Error(`tsc exited ${r.status} without a parsable error:\n${r.stdout}${r.stderr}`);
  }
  return byFile;
}

// Prepares outDir: the shared types and a node_modules link to this package's install, so
// that module resolution from the generated files finds @grafana/schema.
function prepareOut(outDir) {
  fs.rmSync(outDir, { recursive: true, force: true });
  fs.mkdirSync(outDir, { recursive: true });
  fs.copyFileSync(path.join(here, 'grafana-json.ts'), path.join(outDir, 'grafana-json.ts'));
  fs.symlinkSync(path.join(here, 'node_modules'), path.join(outDir, 'node_modules'), 'dir');
}

function checkAll(outDir, entries, schemas, maxSchemaVersion) {
  // entries: [{ name (.ts file), label, dashboard }] -> Map(name -> [errors])
  const result = new Map();
  const tsFiles = [];
  for (const e of entries) {
    const errors = policyErrors(e.dashboard, maxSchemaVersion);
    const { source, errors: typeErrors } = tsSource(e.label, e.dashboard, schemas);
    errors.push(...typeErrors);
    fs.writeFileSync(path.join(outDir, e.name), source);
    tsFiles.push(e.name);
    result.set(e.name, errors);
  }
  const tscErrors = runTsc(outDir, tsFiles);
  for (const [file, errors] of tscErrors) {
    if (!result.has(file)) result.set(file, []);
    result.get(file).push(...errors);
  }
  return result;
}

function readDashboard(file) {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    return { error: `${file}: ${e.message}` };
  }
}

// The self-test's faults: each returns a broken deep copy and the text its rejection must name.
function faults(d) {
  const copy = () => JSON.parse(JSON.stringify(d));
  const firstOf = (dd, pred) => allPanels(dd).find(pred);
  return [
    ['wrong field type (gridPos.w as a string)', () => {
      const b = copy(); firstOf(b, (p) => p.type !== 'row').gridPos.w = '12';
      return [b, "Type 'string' is not assignable to type 'number'"];
    }],
    ['unknown panel field', () => {
      const b = copy(); firstOf(b, (p) => p.type !== 'row').colour = 'red';
      return [b, `'"colour"' does not exist`];
    }],
    ['bad enum value (color mode)', () => {
      const b = copy(); firstOf(b, (p) => p.type !== 'row').fieldConfig.defaults.color = { mode: 'palette-classical' };
      return [b, '"palette-classical"'];
    }],
    ['bad enum value in panel options (legend displayMode)', () => {
      const b = copy(); firstOf(b, (p) => p.type === 'timeseries').options.legend.displayMode = 'lists';
      return [b, '"lists"'];
    }],
    ['unknown field in panel options', () => {
      const b = copy(); firstOf(b, (p) => p.type === 'timeseries').options.legendd = {};
      return [b, `'"legendd"' does not exist`];
    }],
    ['a required field missing (options.legend.showLegend)', () => {
      const b = copy(); delete firstOf(b, (p) => p.type === 'timeseries').options.legend.showLegend;
      return [b, "Property 'showLegend' is missing"];
    }],
    ['unknown field in a Prometheus target', () => {
      const b = copy(); firstOf(b, (p) => (p.targets ?? []).length > 0).targets[0].exprr = 'up';
      return [b, `'"exprr"' does not exist`];
    }],
    ['bad enum value of a variable type', () => {
      const b = copy(); b.templating.list[0].type = 'querry';
      return [b, '"querry"'];
    }],
    ['panel type without a schema', () => {
      const b = copy(); firstOf(b, (p) => p.type !== 'row').type = 'graph-old';
      return [b, 'panel type "graph-old" has no schema'];
    }],
    ['policy: a panel without a unit', () => {
      const b = copy(); delete firstOf(b, (p) => p.type !== 'row').fieldConfig.defaults.unit;
      return [b, 'no unit'];
    }],
    ['policy: a panel without a description', () => {
      const b = copy(); delete firstOf(b, (p) => p.type !== 'row').description;
      return [b, 'no description'];
    }],
  ];
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  if (!fs.existsSync(tscPath) || !fs.existsSync(schemaDir)) {
    console.error(`check.mjs: ${path.join(here, 'node_modules')} is not installed: run scripts/install-deps.sh (npm ci in dashboards/schema-check)`);
    process.exit(3);
  }
  const schemas = panelSchemas();
  const maxSchemaVersion = packageSchemaVersion();
  const version = JSON.parse(fs.readFileSync(path.join(schemaDir, 'package.json'), 'utf8')).version;
  prepareOut(args.out);

  const entries = [];
  let failed = 0;
  for (const file of args.files) {
    const d = readDashboard(file);
    if (d.error) { console.error(`FAIL: ${d.error}`); failed++; continue; }
    entries.push({ name: `${path.basename(file, '.json')}.dashboard.ts`, label: file, dashboard: d });
  }

  if (!args.selfTest) {
    const result = checkAll(args.out, entries, schemas, maxSchemaVersion);
    let passed = 0;
    for (const e of entries) {
      const errors = result.get(e.name);
      const panels = allPanels(e.dashboard).filter((p) => p.type !== 'row').length;
      if (errors.length === 0) {
        passed++;
        console.log(`ok: ${e.label}: ${panels} panels valid against @grafana/schema ${version} (schemaVersion ${e.dashboard.schemaVersion})`);
      } else {
        failed++;
        console.error(`FAIL: ${e.label} (generated ${path.join(args.out, e.name)}):`);
        for (const line of errors) console.error(`  ${line}`);
      }
    }
    for (const [file, errors] of result) {
      if (!entries.some((e) => e.name === file) && errors.length) {
        failed++;
        console.error(`FAIL: ${file}:\n  ${errors.join('\n  ')}`);
      }
    }
    console.log(`${passed} passed, ${failed} failed`);
    process.exit(failed ? 1 : 0);
  }

  // Self-test: the original must pass, and every broken copy must be rejected for its fault.
  if (entries.length !== 1) usage('--self-test takes exactly one dashboard');
  const base = entries[0];
  const cases = [{ name: 'original.dashboard.ts', label: `${base.label} (unbroken)`, dashboard: base.dashboard, want: null, what: 'the unbroken dashboard' }];
  faults(base.dashboard).forEach(([what, make], i) => {
    const [dashboard, want] = make();
    cases.push({ name: `broken-${i + 1}.dashboard.ts`, label: `${base.label} with ${what}`, dashboard, want, what });
  });
  const result = checkAll(args.out, cases, schemas, maxSchemaVersion);
  let passed = 0;
  for (const c of cases) {
    const errors = result.get(c.name);
    if (c.want === null) {
      if (errors.length === 0) { passed++; console.log(`ok: ${c.what} passes`); }
      else { failed++; console.error(`FAIL: ${c.what} is rejected:\n  ${errors.join('\n  ')}`); }
    } else if (errors.some((e) => e.includes(c.want))) {
      passed++;
      console.log(`ok: rejects ${c.what}: ${errors.find((e) => e.includes(c.want)).replace(/^.*error /, '').slice(0, 140)}`);
    } else {
      failed++;
      console.error(`FAIL: ${c.what}: want a rejection naming ${c.want}; got ${errors.length ? errors.join('\n  ') : 'no error at all'}`);
    }
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main();
