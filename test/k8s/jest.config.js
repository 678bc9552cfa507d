/**
 * Jest for `npm run test:k8s` only (test/k8s/run.mjs starts the API server first and passes
 * K8S_CLUSTER). The default config leaves test/k8s/ out.
 * @type {import('jest').Config}
 */
module.exports = {
  rootDir: '../..',
  testEnvironment: 'node',
  roots: ['<rootDir>/test/k8s'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }],
  },
  // Starting a second API server (~5 s) and waiting for a token to expire take longer than 30 s.
  testTimeout: 120000,
  // One worker: the suites share one API server, and one of them stops and restarts an API server of its own.
  maxWorkers: 1,
};
