/**
 * The layering of src/ (docs/adr/0005-layers.md) is held by `import-x/no-restricted-paths` in
 * `npm run lint`. The rule passes silently over an import its resolver cannot resolve, so a lint
 * without errors proves nothing by itself: here the real ESLint, with the project's config, lints
 * probe sources at paths under src/ (given on stdin, never written there) and must report a
 * forbidden import, must not report an allowed one, and nothing in src/ may turn the rule off.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const ROOT = path.join(__dirname, '..');
const ESLINT = path.join(ROOT, 'node_modules', 'eslint', 'bin', 'eslint.js');
const RULE = 'import-x/no-restricted-paths';

interface LintMessage {
  ruleId: string | null;
  message: string;
}

/** The messages ESLint gives `source` as if it were the file `file` (relative to the repository). */
function lint(file: string, source: string): LintMessage[] {
  const r = spawnSync(process.execPath, [ESLINT, '--format', 'json', '--stdin', '--stdin-filename', file], { cwd: ROOT, input: source, encoding: 'utf8' });
  if (r.status !== 0 && r.status !== 1) throw new Error(`eslint failed (${r.status}): ${r.stderr}`);
  const [result] = JSON.parse(r.stdout) as { messages: LintMessage[] }[];
  return result.messages;
}

function sourcesUnder(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sourcesUnder(p) : p.endsWith('.ts') ? [p] : [];
  });
}

describe('the layers of src/', () => {
  it('should refuse an import of a higher layer (the metric store importing the lifecycle)', () => {
    const messages = lint('src/metrics/layers-probe.ts', "import type { AppState } from '../server/lifecycle';\nexport type Probe = AppState;\n");
    const refusals = messages.filter((m) => m.ruleId === RULE);
    expect(refusals).toHaveLength(1);
    expect(refusals[0].message).toContain('"../server/lifecycle"');
    expect(refusals[0].message).toContain('src/metrics is in layer 1');
  });

  it('should refuse an import of a peer in the same layer (ingest importing access)', () => {
    const messages = lint(
      'src/ingest/layers-probe.ts',
      "import { sha256 } from '../formats/api-keys';\nimport { digestEquals } from '../access/credentials';\nexport const probe = digestEquals(sha256('a'), sha256('b'));\n",
    );
    expect(messages.filter((m) => m.ruleId === RULE)).toHaveLength(1);
  });

  it('should let a layer import the layers below it', () => {
    const messages = lint(
      'src/server/layers-probe.ts',
      "import { Registry } from '../metrics/registry';\nimport { normalizePath } from '../formats/request-path';\nexport const probe = [new Registry(), normalizePath('/')];\n",
    );
    expect(messages).toEqual([]);
  });

  it('should have no exception anywhere in src/ (no comment turns the rule off)', () => {
    const disabling = sourcesUnder(path.join(ROOT, 'src')).filter((f) => /eslint-disable[^\n]*(no-restricted-paths|import-x)/.test(fs.readFileSync(f, 'utf8')));
    expect(disabling).toEqual([]);
    const config = fs.readFileSync(path.join(ROOT, 'eslint.config.mjs'), 'utf8');
    expect(config).not.toMatch(/\bexcept\s*:/);
  });
});
