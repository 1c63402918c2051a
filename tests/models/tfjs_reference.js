// Reference execution of a TF.js graph model with the official TF.js runtime (pure-JS CPU
// backend), for the Flax ports' exactness tests. No native bindings: the model files are
// read with fs through a small IOHandler (tf.io.fileSystem would need tfjs-node).
//
// usage: node tfjs_reference.js MODEL_JSON INPUT_F32 N,H,W,C OUTPUT_NODE OUTPUT_F32
//   INPUT_F32: raw little-endian float32 of shape N x H x W x C; OUTPUT_F32 gets the
//   output node's values, raw float32. Prints a JSON line {tfjs, backend, shape}.
// Resolve @tensorflow/tfjs through NODE_PATH (the folder holding node_modules/@tensorflow).
'use strict';
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');

function fileHandler(jsonPath) {
  return {
    load: async () => {
      const model = JSON.parse(fs.readFileSync(jsonPath, 'utf8'));
      const specs = [];
      const buffers = [];
      for (const group of model.weightsManifest) {
        specs.push(...group.weights);
        for (const p of group.paths) buffers.push(fs.readFileSync(path.join(path.dirname(jsonPath), p)));
      }
      const all = Buffer.concat(buffers);
      return {
        modelTopology: model.modelTopology,
        format: model.format,
        generatedBy: model.generatedBy,
        convertedBy: model.convertedBy,
        signature: model.signature,
        userDefinedMetadata: model.userDefinedMetadata,
        weightSpecs: specs,
        weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength),
      };
    },
  };
}

async function main() {
  const [jsonPath, inputPath, shapeArg, outputNode, outputPath] = process.argv.slice(2);
  if (!outputPath) throw new Error('usage: tfjs_reference.js MODEL_JSON INPUT_F32 N,H,W,C OUTPUT_NODE OUTPUT_F32');
  await tf.setBackend('cpu');
  await tf.ready();
  const shape = shapeArg.split(',').map(Number);
  const raw = fs.readFileSync(inputPath);
  const values = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
  const model = await tf.loadGraphModel(fileHandler(jsonPath));
  const x = tf.tensor(values, shape, 'float32');
  const y = model.execute(x, outputNode);
  const out = await y.data();
  fs.writeFileSync(outputPath, Buffer.from(out.buffer, out.byteOffset, out.byteLength));
  console.log(JSON.stringify({tfjs: tf.version.tfjs, backend: tf.getBackend(), shape: y.shape}));
}

main().catch((e) => { console.error(String(e && e.stack || e)); process.exit(1); });
