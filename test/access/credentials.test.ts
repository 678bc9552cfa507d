import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { findApiKey, presentedCredentials, BasicCredentials } from '../../src/access/credentials';
import { parseApiKeys } from '../../src/formats/api-keys';
import { clientAddressOf, parseAddress } from '../../src/access/client-address';
import { parseCidr } from '../../src/config/parse';

describe('presentedCredentials', () => {
  it.each([
    [undefined, { kind: 'none' }],
    ['', { kind: 'none' }],
    [`Basic ${Buffer.from('prom:pa:ss ü').toString('base64')}`, { kind: 'basic', username: 'prom', password: 'pa:ss ü' }],
    [`basic ${Buffer.from('u:').toString('base64')}`, { kind: 'basic', username: 'u', password: '' }],
    ['Bearer abc.def-ghi', { kind: 'bearer', token: 'abc.def-ghi' }],
    ['BEARER  tok', { kind: 'bearer', token: 'tok' }],
    ['Apikey secret', { kind: 'apikey', token: 'secret' }],
    ['APIKEY  k-1', { kind: 'apikey', token: 'k-1' }],
    ['Basic', { kind: 'malformed' }],
    ['Basic a b', { kind: 'malformed' }],
    [`Basic ${Buffer.from('nocolon').toString('base64')}`, { kind: 'malformed' }],
    ['Negotiate abc', { kind: 'malformed' }],
    ['abc', { kind: 'malformed' }],
  ])('should read %p', (header, expected) => {
    expect(presentedCredentials(header)).toEqual(expected);
  });
});

describe('BasicCredentials', () => {
  it('should need both halves right', () => {
    const c = new BasicCredentials('prom', 'secret');
    expect(c.matches('prom', 'secret')).toBe(true);
    expect(c.matches('prom', 'secret ')).toBe(false);
    expect(c.matches('Prom', 'secret')).toBe(false);
    expect(c.matches('', '')).toBe(false);
  });
});

describe('parseApiKeys', () => {
  it('should parse the example of docs/access-control.md', () => {
    const page = fs.readFileSync(path.join(__dirname, '..', '..', 'docs', 'access-control.md'), 'utf8');
    const block = /```\n(# name +key[^`]*)```/.exec(page);
    expect(block).not.toBeNull();
    const keys = parseApiKeys(block![1]);
    expect(keys.map((k) => [k.name, [...k.scopes]])).toEqual([
      ['prometheus', ['metrics']],
      ['dashboards', ['read']],
    ]);
    expect(findApiKey(keys, '4c1f0e2d3c4b5a699b74c9897bac770f')?.name).toBe('dashboards');
  });

  it.each([
    ['prometheus metrics', /line 1: expected/],
    ['a sha256:abc metrics', /line 1: the key must be/],
    ['a plain: metrics', /line 1: the key must be/],
    ['a plain:k1 metrics\na plain:k2 metrics', /line 2: the same name as line 1/],
    ['# only a comment\n', /no keys/],
    ['\n\na plain:the-secret-key ,', /line 3: no scopes/],
  ])('should reject %p naming the line, not the key', (text, message) => {
    expect(() => parseApiKeys(text)).toThrow(message);
    try {
      parseApiKeys(text);
    } catch (err) {
      expect((err as Error).message).not.toContain('the-secret-key');
    }
  });
});

describe('parseApiKeys never echoes what a line holds', () => {
  it('should name lines only, whatever the columns hold and however often (generated)', () => {
    const token = fc.constantFrom('plain:SeCrEt-1', 'SeCrEt-2', 'sha256:SeCrEt', 'prometheus', 'metrics', 'read,metrics', ',', 'plain:', '#', '');
    const line = fc.tuple(fc.array(token, { maxLength: 5 }), fc.constantFrom(' ', '  ', '\t')).map(([t, sep]) => t.join(sep));
    fc.assert(
      fc.property(fc.array(line, { maxLength: 8 }), (lines) => {
        try {
          parseApiKeys(lines.join('\n'));
        } catch (err) {
          const messages = [err as Error, ...(err instanceof AggregateError ? (err.errors as Error[]) : [])].map((e) => e.message);
          for (const m of messages) expect(m).not.toMatch(/SeCrEt/);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('clientAddressOf', () => {
  const trusted = [parseCidr('10.0.0.0/8')!, parseCidr('fd00::/8')!];
  it.each([
    ['::ffff:192.0.2.1', undefined, '192.0.2.1'],
    ['192.0.2.1', '10.9.9.9', '192.0.2.1'],
    ['10.0.0.1', '198.51.100.7', '198.51.100.7'],
    ['10.0.0.1', '203.0.113.5, 198.51.100.7', '198.51.100.7'],
    ['10.0.0.1', '198.51.100.7, 10.1.1.1', '198.51.100.7'],
    ['10.0.0.1', '10.2.2.2, 10.1.1.1', '10.2.2.2'],
    ['fd00::1', '2001:db8::7', '2001:db8::7'],
    ['10.0.0.1', '[2001:db8::8]', '2001:db8::8'],
    ['10.0.0.1', 'bogus', undefined],
    ['not-an-address', undefined, undefined],
  ])('peer %s with X-Forwarded-For %p is %p', (peer, xff, expected) => {
    expect(clientAddressOf(peer, xff, trusted)?.toString()).toBe(expected);
  });

  it('should refuse legacy IPv4 spellings', () => {
    expect(parseAddress('10.1')).toBeUndefined();
    expect(parseAddress('0x7f.1')).toBeUndefined();
  });
});
