import { z } from "zod";

/*
 * A server's network egress, as catalogs and policy.json write it (contract: README, "Network egress").
 * `host:port` patterns: the host is a DNS name, or `*.` and a DNS name (any name below it, at any depth, and
 * NOT the name itself: list `example.com:443` too for both); the port is a number or `*` (any port).
 */

/** Most patterns one server's allow-list may hold. */
export const MAX_ALLOW_HOSTS = 256;

const LABEL = "[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?";
const NAME = `${LABEL}(?:\\.${LABEL})*`;
const PATTERN = new RegExp(`^(\\*\\.)?(${NAME}):(\\*|[0-9]{1,5})$`);

export const EgressHostPattern = z
  .string()
  .max(260)
  .transform((s) => s.toLowerCase())
  .superRefine((value, ctx) => {
    const match = PATTERN.exec(value);
    if (!match) {
      ctx.addIssue({
        code: "custom",
        message:
          "not a host:port pattern: a DNS name or *.name, a colon and a port or * (e.g. api.example.com:443, *.example.com:443)",
      });
      return;
    }
    if (/^[0-9.]+$/.test(match[2]!)) {
      ctx.addIssue({
        code: "custom",
        message:
          "IP addresses are not allowed: name the host (the proxy checks names, and resolves them itself)",
      });
    }
    const port = match[3]!;
    if (port !== "*" && (Number(port) < 1 || Number(port) > 65_535)) {
      ctx.addIssue({ code: "custom", message: `port ${port} is outside 1-65535` });
    }
  });

export const EgressMode = z.enum(["none", "allow", "unrestricted"]);
export type EgressMode = z.infer<typeof EgressMode>;

export const Egress = z
  .strictObject({
    mode: EgressMode,
    allow_hosts: z.array(EgressHostPattern).max(MAX_ALLOW_HOSTS).optional(),
  })
  .superRefine((egress, ctx) => {
    if (egress.mode === "allow" && egress.allow_hosts === undefined) {
      ctx.addIssue({ code: "custom", path: ["allow_hosts"], message: 'mode "allow" needs allow_hosts' });
    }
    if (egress.mode !== "allow" && egress.allow_hosts !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["allow_hosts"],
        message: `allow_hosts applies only to mode "allow" (this is "${egress.mode}")`,
      });
    }
  });
export type Egress = z.infer<typeof Egress>;
