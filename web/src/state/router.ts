import { signal } from "@preact/signals";
import { type Route, parseHash } from "../lib/routes.js";

export { type Route, type Screen, hrefOf } from "../lib/routes.js";

/** The current screen, following the location's hash. */
export const route = signal<Route>(parseHash(location.hash));

export function startRouter(): void {
  window.addEventListener("hashchange", () => {
    route.value = parseHash(location.hash);
  });
}
