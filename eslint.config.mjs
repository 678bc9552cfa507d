// ESLint flat config: typescript-eslint's recommended rules over the sources, tests and benchmarks,
// and the layers of src/ (docs/adr/0005-layers.md). Formatting is Prettier's job (.prettierrc.json);
// `npm run lint` runs both.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import importX, { createNodeResolver } from 'eslint-plugin-import-x';

/**
 * The layers of src/, lowest first (docs/adr/0005-layers.md). A module may import from its own
 * folder (or file) and from any layer below its own; never from a layer above, nor from another
 * folder of its own layer. demo/ is a program of its own and imports nothing of the sidecar.
 */
const LAYERS = [
  ['src/version.ts', 'src/formats'],
  ['src/metrics'],
  ['src/runtime', 'src/log'],
  ['src/config'],
  ['src/access', 'src/ingest'],
  ['src/proxy'],
  ['src/exposition', 'src/status'],
  ['src/server'],
  ['src/app.ts'],
  ['src/main.ts'],
];

const layerZones = [
  ...LAYERS.flatMap((layer, i) =>
    layer.map((target) => ({
      target,
      from: [...layer.filter((peer) => peer !== target), ...LAYERS.slice(i + 1).flat(), 'src/demo'],
      message: `${target} is in layer ${i}: it may import only from itself and from the layers below it (docs/adr/0005-layers.md).`,
    })),
  ),
  { target: 'src/demo', from: LAYERS.flat(), message: 'src/demo is a program of its own: it imports nothing of the sidecar (docs/adr/0005-layers.md).' },
];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.tools/**', 'coverage/**', 'bench/results/**', 'charts/**', 'test-artifacts/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // Node's CommonJS build: lazy `require` keeps optional features (Kubernetes client) off the start-up path.
      '@typescript-eslint/no-require-imports': 'off',
    },
  },
  {
    files: ['src/**/*.ts'],
    plugins: { 'import-x': importX },
    settings: { 'import-x/resolver-next': [createNodeResolver({ extensions: ['.ts', '.js', '.json'] })] },
    rules: {
      'import-x/no-restricted-paths': ['error', { zones: layerZones }],
    },
  },
  {
    files: ['**/*.mjs', '**/*.cjs', '**/*.js'],
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        setImmediate: 'readonly',
        URL: 'readonly',
        __dirname: 'readonly',
        require: 'readonly',
        module: 'writable',
        performance: 'readonly',
        fetch: 'readonly',
        URLSearchParams: 'readonly',
        AbortController: 'readonly',
        AbortSignal: 'readonly',
        TextEncoder: 'readonly',
        TextDecoder: 'readonly',
        queueMicrotask: 'readonly',
        structuredClone: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-require-imports': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
);
