/**
 * The status page's script, served as /status.js (same origin, so `script-src 'self'` allows it)
 * together with the view: `(clientMain)(createView)`. Like the view, this function is shipped by
 * its source text, so it references nothing outside itself.
 *
 * It refreshes the page from status.json every few seconds (not while the tab is hidden), sorts
 * the route table when a column button is pressed (the same buttons submit `?sort=` to the
 * server when scripts are off), keeps keyboard focus and open <details> across re-renders, and
 * says in a live region when the data was last updated or why a refresh failed.
 */
import type { StatusDocument } from './schema';
import type { SortSpec, View } from './view';

/* eslint-disable @typescript-eslint/no-explicit-any -- the DOM is not in this project's lib; these globals exist in the browser only. */
declare const document: any;
declare const location: any;
declare const history: any;
declare const fetch: any;
/* eslint-enable @typescript-eslint/no-explicit-any */

export function clientMain(createView: () => View): void {
  const REFRESH_MS = 5000;
  const view = createView();
  const root = document.getElementById('status');
  const live = document.getElementById('updated');
  if (!root || !live) return;
  const jsonUrl: string = root.getAttribute('data-json');
  let sort: SortSpec = view.parseSort(new URLSearchParams(location.search).get('sort'));
  let doc: StatusDocument | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;

  const render = (): void => {
    if (!doc) return;
    const focused = document.activeElement;
    const focusSort = focused && root.contains(focused) ? focused.getAttribute('data-sort') : null;
    const open = new Set<string>();
    for (const d of root.querySelectorAll('details[open]')) open.add(d.closest('section')?.id ?? '');
    root.innerHTML = view.main(doc, sort);
    for (const d of root.querySelectorAll('details')) if (open.has(d.closest('section')?.id ?? '')) d.open = true;
    if (focusSort) root.querySelector(`button[data-sort="${focusSort}"]`)?.focus();
    document.title = view.title(doc);
  };

  const refresh = async (): Promise<void> => {
    clearTimeout(timer);
    try {
      // The page's own query (an ?api_key= when that method is on) goes along; nothing is added.
      const res = await fetch(jsonUrl + location.search, { cache: 'no-store', credentials: 'same-origin', headers: { accept: 'application/json' } });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      doc = (await res.json()) as StatusDocument;
      render();
      live.textContent = `Updated ${new Date(doc.generated_at).toLocaleTimeString()}; refreshes every ${REFRESH_MS / 1000} s.`;
      live.className = 'updated';
    } catch (err) {
      live.textContent = `Refresh failed (${(err as Error).message}); showing the last data. Retrying.`;
      live.className = 'updated bad-text';
    }
    if (!document.hidden) timer = setTimeout(refresh, REFRESH_MS);
  };

  root.addEventListener('click', (ev: { target: { closest(s: string): { value: string } | null } | null; preventDefault(): void }) => {
    const button = ev.target?.closest('button[data-sort]');
    if (!button || !doc) return;
    ev.preventDefault();
    sort = view.parseSort(button.value);
    const q = new URLSearchParams(location.search);
    q.set('sort', `${sort.key}:${sort.dir}`);
    history.replaceState(null, '', `?${q.toString()}`);
    render();
  });
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) void refresh();
    else clearTimeout(timer);
  });
  void refresh();
}
