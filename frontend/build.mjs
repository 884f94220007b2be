// Bundles the Cornerstone3D study viewer into ../static/build/dicom/ (git-ignored; Django serves it).
// Not one file: the image loader's decode worker and the tools' compute worker are loaded with
// `new URL('./…worker.js', import.meta.url)`, so they are built beside the app bundle at the same
// relative paths, and the codecs' .wasm files are copied there for init({ wasmBasePath }).
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(here, '../static/build');
const dicomOut = join(out, 'dicom');
const modules = join(here, 'node_modules');

rmSync(dicomOut, { recursive: true, force: true });
mkdirSync(dicomOut, { recursive: true });

const common = {
  bundle: true,
  format: 'esm',
  minify: true,
  sourcemap: false,
  target: ['chrome110', 'firefox115', 'safari16'],
  // Codec glue checks for Node; in the browser these are never reached.
  external: ['fs', 'path', 'module', 'worker_threads', 'crypto'],
  alias: { url: join(here, 'src/url-shim.js') },
  define: { 'process.env.NODE_ENV': '"production"' },
  logLevel: 'warning',
};

await build({ ...common, entryPoints: [join(here, 'src/viewer.js')], outfile: join(dicomOut, 'viewer.js') });
await build({
  ...common,
  entryPoints: [join(modules, '@cornerstonejs/dicom-image-loader/dist/esm/decodeImageFrameWorker.js')],
  outfile: join(dicomOut, 'decodeImageFrameWorker.js'),
});
await build({
  ...common,
  entryPoints: [join(modules, '@cornerstonejs/tools/dist/esm/workers/computeWorker.js')],
  outfile: join(out, 'workers', 'computeWorker.js'),
});

for (const codec of ['codec-charls', 'codec-libjpeg-turbo-8bit', 'codec-openjpeg', 'codec-openjph', 'codec-libjxl']) {
  const dist = join(modules, '@cornerstonejs', codec, 'dist');
  for (const name of readdirSync(dist)) {
    if (name.includes('_decode.wasm') || name === 'openjphjs.wasm') copyFileSync(join(dist, name), join(dicomOut, name));
  }
}
console.log(`built ${dicomOut}`);
