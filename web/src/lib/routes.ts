/*
 * Hash routes (`#/dashboard/alice`): the server serves one page, and nothing secret is ever in the URL (user ids
 * are not secret; tokens never appear here). Pure, unit-tested under Node.
 */

export type Screen = "dashboard" | "monitor" | "catalogs" | "users";

export interface Route {
  screen: Screen;
  /** The user a screen is about (admin only; a user token always sees itself). */
  user: string | null;
}

const SCREENS: readonly Screen[] = ["dashboard", "monitor", "catalogs", "users"];

export function parseHash(hash: string): Route {
  const [screen, user] = hash.replace(/^#\/?/, "").split("/");
  const known = SCREENS.find((s) => s === screen);
  const userId = user && /^[a-zA-Z0-9-]{1,32}$/.test(user) ? user : null;
  return { screen: known ?? "dashboard", user: userId };
}

export function hrefOf(route: Route): string {
  return `#/${route.screen}${route.user ? `/${route.user}` : ""}`;
}
