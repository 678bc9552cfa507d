/**
 * The hardening suite's request targets: pieces that parsers disagree on (slashes, backslashes,
 * dot segments, percent signs, `;`, `?`, `#`, control bytes) under prefixes from origin-form to
 * absolute-form. Shared by the canonical-target property (target.property.test.ts) and the
 * learned-caps memory property (learned-routes.test.ts).
 */
import fc from 'fast-check';

const PIECES = [
  '/',
  '/',
  '/',
  '/',
  '\\',
  '.',
  '.',
  '..',
  '%',
  ';',
  '?',
  '#',
  '0',
  '1',
  '2',
  '5',
  '9',
  'a',
  'c',
  'e',
  'f',
  'A',
  'C',
  'E',
  'F',
  '%2e',
  '%2E',
  '%2f',
  '%2F',
  '%5c',
  '%5C',
  '%25',
  '%252e',
  '%252f',
  '%2525',
  '%3b',
  '%3F',
  '%23',
  '%00',
  '%0a',
  '%7f',
  '%c2%85',
  '%ff',
  '%e2%82',
  '%c0%ae',
  '%e2%80%ae',
  'debug',
  'debug',
  'DEBUG',
  'Debug',
  'dEbUg',
  '%64ebug',
  '%44%45%42%55%47',
  '%2564ebug',
  '%EF%BD%84%EF%BD%85%EF%BD%82%EF%BD%95%EF%BD%87', // full-width ｄｅｂｕｇ, encoded
  '%ef%bc%8e',
  '%EF%BC%8F',
  '%E2%80%A4',
  '%E2%80%A5', // full-width . and /, one- and two-dot leaders
  'ｄｅｂｕｇ',
  '．',
  '／', // raw non-ASCII: Node's parser refuses the bytes
  'metrics',
  'healthz',
  'x',
  'api',
  'users',
  ';jsessionid=1',
  '..;',
  '%2e%2e;x',
  '~',
  '-',
  '_',
  '=',
  '&',
  ':',
  '@',
  '!',
  '\x00',
  '\x01',
  '\t',
  '\x7f',
  ' ',
  '\x1b',
  '\r',
  '\n',
];
const PREFIXES = ['/', '/', '/', '/', '//', '/debug', '/DEBUG/', '/debug/', '', 'http://h', 'HTTP://h:8080', 'https://h', 'ftp://h', '*'];

export const targetArb = fc.oneof(
  { weight: 1, arbitrary: fc.constantFrom('*', '/', '/debug', '/debug/..', 'http://h', 'http://h?x') },
  {
    weight: 30,
    arbitrary: fc.tuple(fc.constantFrom(...PREFIXES), fc.array(fc.constantFrom(...PIECES), { maxLength: 14 })).map(([prefix, pieces]) => {
      let rest = pieces.join('');
      // After an absolute-form authority the path starts with `/` or `?` (Node's parser decides what an authority may hold).
      if (/^[a-z]+:\/\/h(:\d+)?$/i.test(prefix) && rest !== '' && !rest.startsWith('/') && !rest.startsWith('?')) rest = `/${rest}`;
      return prefix + rest;
    }),
  },
);
