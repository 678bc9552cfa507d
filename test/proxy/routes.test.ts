import { RouteTemplater } from '../../src/proxy/routes';

describe('RouteTemplater', () => {
  const t = new RouteTemplater(['/repos/:owner/:repo/issues/:number', '/static/*', '/users/me'], ['/healthz', '/internal/*']);

  it.each([
    ['/', '/'],
    ['/users/42', '/users/:id'],
    ['/users/42/', '/users/:id/'],
    ['/users/me', '/users/me'],
    ['/orders/9f1c2a7e-5b7d-4c1e-9a3b-2f6d8e0c1b4a/items', '/orders/:id/items'],
    ['/commits/3f786850e387550fdab836ed7e6dc881de23001b', '/commits/:id'],
    ['/tokens/AbCdEfGhIjKlMnOpQrStUvWx1234', '/tokens/:id'],
    ['/words/deadbeefcafe', '/words/deadbeefcafe'],
    ['/repos/octo/hello/issues/12?state=open', '/repos/:owner/:repo/issues/:number'],
    ['/static/css/site.css', '/static/*'],
    ['/static', '/static/*'],
    ['/about-us', '/about-us'],
  ])('should template %s as %s', (path, template) => {
    expect(t.template(path)).toBe(template);
  });

  it.each(['/healthz', '/healthz?probe=1', '/internal/x/y'])('should exclude %s', (path) => {
    expect(t.template(path)).toBeNull();
  });

  it('should keep its cache bounded', () => {
    const small = new RouteTemplater([], [], { cacheSize: 10 });
    for (let i = 0; i < 100; i++) small.template(`/p/${i}x`);
    expect((small as unknown as { cache: Map<string, string> }).cache.size).toBeLessThanOrEqual(10);
  });
});
