/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  // test/k8s/ needs a real API server: `npm run test:k8s` runs it with test/k8s/jest.config.js.
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/k8s/'],
  transform: {
    // isolatedModules (tsconfig): ts-jest only transpiles; `npm run typecheck` checks types once.
    '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }],
  },
  testTimeout: 30000,
  // Several suites start real servers and child processes; two cores, so keep it modest.
  maxWorkers: 2,
};
