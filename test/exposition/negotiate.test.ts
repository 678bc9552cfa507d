import { acceptsGzip, negotiateFormat } from '../../src/exposition/negotiate';

describe('negotiateFormat', () => {
  it.each([
    [undefined, 'text'],
    ['*/*', 'text'],
    ['text/plain;version=0.0.4', 'text'],
    ['application/openmetrics-text', 'openmetrics'],
    ['application/openmetrics-text; version=1.0.0; charset=utf-8', 'openmetrics'],
    ['application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1', 'openmetrics'],
    ['application/openmetrics-text;version=2.0.0', 'text'],
    ['application/openmetrics-text;q=0', 'text'],
    ['application/openmetrics-text;q=0.3,text/plain;q=0.8', 'text'],
  ])('should pick the right format for %p', (accept, format) => {
    expect(negotiateFormat(accept)).toBe(format);
  });
});

describe('acceptsGzip', () => {
  it.each([
    [undefined, false],
    ['gzip', true],
    ['deflate, gzip;q=0.5', true],
    ['gzip;q=0', false],
    ['identity', false],
    ['*', true],
  ])('should read %p as %p', (header, ok) => {
    expect(acceptsGzip(header)).toBe(ok);
  });
});
