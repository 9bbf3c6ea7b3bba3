// Embeddings. The sinusoidal time embedding is one row that depends only on the scalar t: the
// host computes it with the CPU kernel (bit-identical on every backend; GPU cos/sin of arguments
// up to time_scale = 1000 rad are only accurate to ~1e-4 on some drivers) and `broadcast_rows`
// repeats it for the batch. `gather_rows` picks class-embedding rows by id.

struct Params {
    len: u32,  // output elements
    d: u32,    // row length
    _p0: u32,
    _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read> ids: array<u32>;

@compute @workgroup_size(256)
fn broadcast_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if (i < p.len) {
        out[i] = table[i % p.d];
    }
}

@compute @workgroup_size(256)
fn gather_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if (i < p.len) {
        out[i] = table[ids[i / p.d] * p.d + i % p.d];
    }
}
