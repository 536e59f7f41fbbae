// ort_bench.js: the ONNX Runtime peer of `make bench-models` (onnxruntime-node, CPU).
//
//   node bench/models/ort_bench.js DIR OUT_JSON [--reps N] [--min-s S] [--batches 1,16]
//
// Times DIR/bert-mini-{fp32,int8-w8,int8-w7}.onnx on the first B sequences of
// DIR/inputs.safetensors ("bert_ids", I32 [16][64]), one thread (intra- and inter-op 1,
// sequential), every graph optimisation on.  Each measurement is one session.run call:
// process CPU time (all threads of the process, so a stray worker would show) and wall
// time; after warm-up calls, at least N calls and S seconds; medians are reported.  The
// outputs of each (model, batch) are written next to OUT_JSON as raw float32 for the
// driver to compare against PyTorch.  Exit 3 with a SKIP line when onnxruntime-node is not
// installed (make bench-deps).
'use strict';

const fs = require('fs');
const path = require('path');

function usage() {
    console.error('usage: ort_bench.js DIR OUT_JSON [--reps N] [--min-s S] [--batches 1,16]');
    process.exit(2);
}

function readSafetensors(file) {
    const buf = fs.readFileSync(file);
    const n = Number(buf.readBigUInt64LE(0));
    const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
    const base = 8 + n;
    const out = {};
    for (const [name, t] of Object.entries(header)) {
        if (name === '__metadata__')
            continue;
        const [b, e] = t.data_offsets;
        const bytes = buf.subarray(base + b, base + e);
        out[name] = {dtype: t.dtype, shape: t.shape, bytes: Buffer.from(bytes)};
    }
    return out;
}

function median(v) {
    const s = [...v].sort((a, b) => a - b);
    const h = s.length >> 1;
    return s.length % 2 ? s[h] : 0.5 * (s[h - 1] + s[h]);
}

async function main() {
    const args = process.argv.slice(2);
    if (args.length < 2)
        usage();
    const [dir, outJson] = args;
    let reps = 30, minS = 1.0, batches = [1, 16];
    for (let i = 2; i < args.length; i++) {
        if (args[i] === '--reps')
            reps = parseInt(args[++i], 10);
        else if (args[i] === '--min-s')
            minS = parseFloat(args[++i]);
        else if (args[i] === '--batches')
            batches = args[++i].split(',').map(Number);
        else
            usage();
    }
    let ort;
    try {
        ort = require('onnxruntime-node');
    } catch (e) {
        console.log('SKIP: ONNX Runtime peer: onnxruntime-node is not installed ' +
                    '(make bench-deps: ONNXRUNTIME_NODE_INSTALL=skip npm install in bench/models)');
        process.exit(3);
    }
    const inputs = readSafetensors(path.join(dir, 'inputs.safetensors'));
    const ids32 = new Int32Array(inputs.bert_ids.bytes.buffer, inputs.bert_ids.bytes.byteOffset,
                                 inputs.bert_ids.bytes.length / 4);
    const [maxBatch, seq] = inputs.bert_ids.shape;
    const outDir = path.dirname(outJson);
    fs.mkdirSync(outDir, {recursive: true});

    const variants = [
        ['ort-fp32', 'bert-mini-fp32.onnx'],
        ['ort-int8-w8', 'bert-mini-int8-w8.onnx'],
        ['ort-int8-w7', 'bert-mini-int8-w7.onnx'],
    ];
    const rows = [];
    for (const [impl, file] of variants) {
        const model = path.join(dir, file);
        if (!fs.existsSync(model)) {
            console.log(`SKIP: ${impl}: ${model} missing (python3-onnx writes the int8 graphs; ` +
                        'make bench-deps)');
            continue;
        }
        const optimized = path.join(outDir, file.replace('.onnx', '.opt.onnx'));
        const session = await ort.InferenceSession.create(model, {
            intraOpNumThreads: 1,
            interOpNumThreads: 1,
            executionMode: 'sequential',
            graphOptimizationLevel: 'all',
            optimizedModelFilePath: optimized,
        });
        for (const b of batches) {
            if (b > maxBatch)
                continue;
            const ids = new BigInt64Array(b * seq);
            for (let i = 0; i < b * seq; i++)
                ids[i] = BigInt(ids32[i]);
            const lens = new BigInt64Array(b).fill(BigInt(seq));
            const feeds = {
                input_ids: new ort.Tensor('int64', ids, [b, seq]),
                lengths: new ort.Tensor('int64', lens, [b]),
            };
            let result = await session.run(feeds);
            for (let w = 0; w < 3; w++)
                result = await session.run(feeds);
            const out = result[session.outputNames[0]];
            fs.writeFileSync(path.join(outDir, `${impl}-bert-b${b}.f32`),
                             Buffer.from(out.data.buffer, out.data.byteOffset,
                                         out.data.byteLength));
            const cpu = [], wall = [];
            const t_start = process.hrtime.bigint();
            while (cpu.length < reps || Number(process.hrtime.bigint() - t_start) / 1e9 < minS) {
                const c0 = process.cpuUsage();
                const w0 = process.hrtime.bigint();
                await session.run(feeds);
                const w1 = process.hrtime.bigint();
                const c = process.cpuUsage(c0);
                cpu.push((c.user + c.system) / 1e3);
                wall.push(Number(w1 - w0) / 1e6);
                if (cpu.length >= 10 * reps)
                    break;
            }
            rows.push({model: 'bert-mini', batch: b, impl, cpu_ms: median(cpu),
                       wall_ms: median(wall), n: cpu.length,
                       output: `${impl}-bert-b${b}.f32`});
            process.stderr.write('.');
        }
        await session.release();
    }
    process.stderr.write('\n');
    const version = require('onnxruntime-node/package.json').version;
    fs.writeFileSync(outJson, JSON.stringify({runtime: `onnxruntime-node ${version}`,
                                              node: process.version, rows}, null, 1));
}

main().catch((e) => {
    console.error(`ort_bench: ${e.stack || e}`);
    process.exit(1);
});
