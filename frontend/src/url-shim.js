// Codec glue imports Node's `url` only for fileURLToPath when run under Node.
export function fileURLToPath(u) {
  return new URL(u).pathname;
}
export default { fileURLToPath };
