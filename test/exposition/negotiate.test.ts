import { acceptsGzip, negotiate, negotiateFormat } from '../../src/exposition/negotiate';

const PROTO = 'application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited';
const OM = 'application/openmetrics-text; version=1.0.0; charset=utf-8';
const TEXT = 'text/plain; version=0.0.4; charset=utf-8';
const TEXT1 = 'text/plain; version=1.0.0; charset=utf-8';

/**
 * The Accept headers Prometheus sends, byte for byte.
 * 2.42 (scrape/scrape.go): the constants scrapeAcceptHeader and scrapeAcceptHeaderWithProtobuf
 * (the latter with --enable-feature=native-histograms).
 * 3.x (scrape/scrape.go acceptHeader(protocols, escapingScheme), config.ScrapeProtocolsHeaders):
 * weights from 0.6 down (5 known protocols + 1), `escaping=<scheme>` on the text 1.0.0 and
 * OpenMetrics 1.0.0 ranges only, then `*\/*`. Default protocols: OpenMetricsText1.0.0,
 * OpenMetricsText0.0.1, PrometheusText1.0.0, PrometheusText0.0.4; proto first (PrometheusProto
 * ahead of those) with the native-histograms feature flag (3.0-3.7) or scrape_native_histograms
 * (3.8+). The scheme is allow-utf-8 unless metric_name_escaping_scheme (or legacy validation)
 * says otherwise.
 */
const P2_42 = 'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';
const P2_42_NATIVE =
  'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';
const p3 = (protocols: string[], escaping = 'allow-utf-8'): string => {
  const headers: Record<string, string> = {
    PrometheusProto: 'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited',
    'PrometheusText0.0.4': 'text/plain;version=0.0.4',
    'PrometheusText1.0.0': 'text/plain;version=1.0.0',
    'OpenMetricsText0.0.1': 'application/openmetrics-text;version=0.0.1',
    'OpenMetricsText1.0.0': 'application/openmetrics-text;version=1.0.0',
  };
  let weight = 6;
  const vals = protocols.map((p) => {
    let v = headers[p];
    if (p === 'PrometheusText1.0.0' || p === 'OpenMetricsText1.0.0') v += `;escaping=${escaping}`;
    return `${v};q=0.${weight--}`;
  });
  return [...vals, `*/*;q=0.${weight}`].join(',');
};
const P3_DEFAULT = ['OpenMetricsText1.0.0', 'OpenMetricsText0.0.1', 'PrometheusText1.0.0', 'PrometheusText0.0.4'];
const P3_PROTO_FIRST = ['PrometheusProto', ...P3_DEFAULT];

describe('the Accept strings Prometheus sends (golden)', () => {
  it('should spell the 3.x headers as Prometheus does', () => {
    // Guards the builder above against drift: the default header as Prometheus 3.x logs it.
    expect(p3(P3_DEFAULT)).toBe(
      'application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2',
    );
    expect(p3(P3_PROTO_FIRST)).toBe(
      'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1',
    );
  });

  it.each([
    ['2.42', P2_42, 'openmetrics', OM],
    ['2.42 --enable-feature=native-histograms', P2_42_NATIVE, 'protobuf', PROTO],
    ['3.x default', p3(P3_DEFAULT), 'openmetrics', `${OM}; escaping=allow-utf-8`],
    ['3.x default, escaping underscores', p3(P3_DEFAULT, 'underscores'), 'openmetrics', `${OM}; escaping=underscores`],
    ['3.x default, escaping dots', p3(P3_DEFAULT, 'dots'), 'openmetrics', `${OM}; escaping=dots`],
    ['3.x default, escaping values', p3(P3_DEFAULT, 'values'), 'openmetrics', `${OM}; escaping=values`],
    // The proto range carries no escaping and comes first: nothing to echo (client_golang would say underscores).
    ['3.x native histograms (proto first)', p3(P3_PROTO_FIRST), 'protobuf', PROTO],
    ['3.x scrape_protocols [PrometheusProto]', p3(['PrometheusProto']), 'protobuf', PROTO],
    ['3.x scrape_protocols [PrometheusText1.0.0]', p3(['PrometheusText1.0.0']), 'text', `${TEXT1}; escaping=allow-utf-8`],
    ['3.x scrape_protocols [PrometheusText1.0.0] underscores', p3(['PrometheusText1.0.0'], 'underscores'), 'text', `${TEXT1}; escaping=underscores`],
    ['3.x scrape_protocols [PrometheusText0.0.4]', p3(['PrometheusText0.0.4']), 'text', TEXT],
    ['3.x scrape_protocols [OpenMetricsText0.0.1]', p3(['OpenMetricsText0.0.1']), 'text', TEXT], // OM 0.0.1 is not served: */* gets text
    ['3.x scrape_protocols [PrometheusText0.0.4, PrometheusProto]', p3(['PrometheusText0.0.4', 'PrometheusProto']), 'text', TEXT],
    [
      '3.x scrape_protocols [PrometheusText1.0.0, PrometheusText0.0.4] dots',
      p3(['PrometheusText1.0.0', 'PrometheusText0.0.4'], 'dots'),
      'text',
      `${TEXT1}; escaping=dots`,
    ],
    [
      '3.x scrape_protocols [OpenMetricsText1.0.0, PrometheusProto]',
      p3(['OpenMetricsText1.0.0', 'PrometheusProto']),
      'openmetrics',
      `${OM}; escaping=allow-utf-8`,
    ],
  ])('Prometheus %s', (_, accept, format, contentType) => {
    const n = negotiate(accept);
    expect(n.format).toBe(format);
    expect(n.contentType).toBe(contentType);
  });
});

describe('negotiate', () => {
  it.each([
    [undefined, 'text', TEXT],
    ['', 'text', TEXT],
    ['*/*', 'text', TEXT],
    ['text/plain;version=0.0.4', 'text', TEXT],
    ['text/plain', 'text', TEXT],
    ['text/plain;version=1.0.0', 'text', TEXT1],
    ['text/plain;version=2.0.0', 'text', TEXT],
    ['application/openmetrics-text', 'openmetrics', OM],
    ['application/openmetrics-text; version=1.0.0; charset=utf-8', 'openmetrics', OM],
    ['application/openmetrics-text;version=2.0.0', 'text', TEXT],
    ['application/openmetrics-text;q=0', 'text', TEXT],
    ['application/openmetrics-text;q=0.3,text/plain;q=0.8', 'text', TEXT],
    ['*/*,application/openmetrics-text', 'openmetrics', OM], // a named range beats a wildcard of equal weight
    // Protobuf only when named, delimited, for MetricFamily.
    ['application/*', 'text', TEXT],
    ['application/vnd.google.protobuf', 'text', TEXT],
    ['application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text', 'text', TEXT],
    ['application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=compact-text', 'text', TEXT],
    ['application/vnd.google.protobuf;proto=other.Message;encoding=delimited', 'text', TEXT],
    ['application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0', 'text', TEXT],
    ['application/vnd.google.protobuf; proto="io.prometheus.client.MetricFamily"; encoding="delimited"', 'protobuf', PROTO],
    ['application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.4,text/plain;q=0.5', 'text', TEXT],
    ['text/plain;q=0.5,application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5', 'protobuf', PROTO],
    // Escaping: echoed when asked (client_golang's tests' cases), unknown schemes ignored.
    ['text/plain;version=0.0.4; escaping=values;', 'text', `${TEXT}; escaping=values`],
    ['text/plain;version=0.0.4; escaping=allow-utf-8', 'text', `${TEXT}; escaping=allow-utf-8`],
    ['application/openmetrics-text;version=1.0.0; escaping=values;', 'openmetrics', `${OM}; escaping=values`],
    [
      'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited; escaping=allow-utf-8;',
      'protobuf',
      `${PROTO}; escaping=allow-utf-8`,
    ],
    ['text/plain;version=0.0.4;escaping=bogus', 'text', TEXT],
    // A range after the chosen one does not lend its scheme.
    ['text/plain;version=0.0.4;q=0.9,application/openmetrics-text;escaping=dots;q=0.2', 'text', TEXT],
  ])('should answer %p with %p as %p', (accept, format, contentType) => {
    const n = negotiate(accept);
    expect(n.format).toBe(format);
    expect(n.contentType).toBe(contentType);
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

describe('negotiate without protobuf on offer', () => {
  it('should take the next range Prometheus offers', () => {
    expect(negotiate(P2_42_NATIVE, { protobuf: false }).contentType).toBe(OM);
    expect(negotiate(p3(P3_PROTO_FIRST), { protobuf: false }).contentType).toBe(`${OM}; escaping=allow-utf-8`);
  });
});
