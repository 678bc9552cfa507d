/**
 * Who is the client, for the allow-list: the TCP peer, or, when the peer is a trusted proxy, the
 * rightmost address in `X-Forwarded-For` that is not itself a trusted proxy (the left part of that
 * header is whatever the client chose to send, so it is never believed).
 */
import { parseAddress, type Address } from '../config/parse';
import type { Cidr } from '../config';

export { parseAddress, type Address } from '../config/parse';

export function inAny(addr: Address, ranges: readonly Cidr[]): boolean {
  for (const c of ranges) {
    if (c.range[0].kind() === addr.kind() && addr.match(c.range)) return true;
  }
  return false;
}

/**
 * The client's address, or undefined when it cannot be determined (an unparseable hop): callers
 * treat that as "not allowed".
 */
export function clientAddressOf(peer: string | undefined, forwardedFor: string | undefined, trusted: readonly Cidr[]): Address | undefined {
  const p = peer === undefined ? undefined : parseAddress(peer);
  if (p === undefined || trusted.length === 0 || !inAny(p, trusted) || !forwardedFor) return p;
  const hops = forwardedFor.split(',');
  let client: Address = p;
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = parseAddress(hops[i]);
    if (hop === undefined) return undefined;
    client = hop;
    if (!inAny(hop, trusted)) return hop;
  }
  return client; // every hop trusted: the leftmost one is the client
}
