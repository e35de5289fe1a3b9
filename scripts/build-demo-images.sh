#!/usr/bin/env bash
# Build the images the example tree (manifests/example) runs, without any registry (no `docker pull`):
#   mcp-portal-demo/stdio-echo:1  a real MCP server over stdin/stdout (tools: echo, add, slow)
#   mcp-portal-demo/http-echo:1   the same tools over streamable HTTP on port 8080 (/mcp)
# They are the MCP servers of test/fixtures/mcp-servers, bundled onto a Node base image made from this host's
# node binary (scripts/build-test-images.sh), so the gateway's MCP probes find them Ready. Idempotent.
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

bash scripts/build-test-images.sh
TEST_MCP_STDIO_IMAGE="${DEMO_STDIO_IMAGE:-mcp-portal-demo/stdio-echo:1}" \
  TEST_MCP_HTTP_IMAGE="${DEMO_HTTP_IMAGE:-mcp-portal-demo/http-echo:1}" \
  bash scripts/build-mcp-test-images.sh
