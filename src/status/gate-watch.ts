/**
 * Remembers which client addresses the CIDR allow-list refused, for the status page's access
 * section. Only those: a client refused for its credentials is never named (its address says
 * nothing about why, and the page must not become a log of who tried).
 *
 * The gate checks the allow-list first and with a pure rule (DESIGN.md, "Access"), so a request
 * the gate did not let through, whose client address (as the gate computes it, X-Forwarded-For
 * from trusted proxies included) is outside the list, was refused by that rule.
 */
import type { Context, Middleware, Next } from 'koa';
import type { Config } from '../config';
import { clientAddressOf, inAny } from '../access/client-address';

export interface CidrRefusalSink {
  cidrRefused(address: string, listener: string): void;
}

export function watchCidrRefusals(gate: Middleware, listener: string, config: Config, sink: CidrRefusalSink): Middleware {
  const a = config.access;
  if (a.allowedCidrs.length === 0) return gate;
  return async (ctx: Context, next: Next): Promise<void> => {
    let passed = false;
    await gate(ctx, async () => {
      passed = true;
      await next();
    });
    if (passed) return;
    const xff = ctx.req.headers['x-forwarded-for'];
    const client = clientAddressOf(ctx.req.socket.remoteAddress, Array.isArray(xff) ? xff.join(',') : xff, a.trustedProxies);
    if (client === undefined) sink.cidrRefused('(unparseable address)', listener);
    else if (!inAny(client, a.allowedCidrs)) sink.cidrRefused(client.toString(), listener);
  };
}
