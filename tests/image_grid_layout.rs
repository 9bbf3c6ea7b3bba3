//! The image grid always fits its canvas whole (`GridPlot::fit`): the column count stays a
//! multiple of the class count (one class per column) and the scale is the largest that fits.

use pushforward::render::GridPlot;

fn grid(n: usize, classes: usize, side: usize) -> GridPlot {
    GridPlot { n, channels: 3, height: side, width: side, range: [-1.0, 1.0], cols: classes, scale: 1 }
}

fn fits(g: &GridPlot, w: usize, h: usize) -> bool {
    let (gw, gh) = g.size();
    gw <= w && gh <= h
}

#[test]
fn grids_fit_the_canvas_with_whole_classes_per_column() {
    // The reported case: a 3-class 16×16 RGB model, 12 images, a square 640-px canvas.
    let g = grid(12, 3, 16).fit(640, 640);
    println!("12 images of 3 classes on 640²: {} columns, scale {}, {:?} px", g.cols, g.scale, g.size());
    assert!(fits(&g, 640, 640), "{:?}", g.size());
    assert_eq!(g.cols % 3, 0);
    // The old layout (scale from the width only) overflowed the height.
    let old = grid(12, 3, 16).fit_width(640);
    assert!(!fits(&old, 640, 640), "the case that was cut off");
    // Every size and shape of canvas: the grid fits wherever 1× can, at the largest scale.
    for (n, k, side) in [(1, 1, 28), (10, 10, 28), (100, 10, 28), (37, 4, 32), (64, 0, 32), (300, 10, 28), (7, 1, 64)] {
        for (w, h) in [(640, 640), (640, 360), (300, 700), (1024, 1024), (200, 200)] {
            let g = grid(n, k.max(1), side).fit(w, h);
            assert_eq!(g.cols % k.max(1), 0, "n {n} k {k}: {} columns", g.cols);
            if fits(&GridPlot { scale: 1, ..g }, w, h) {
                assert!(fits(&g, w, h), "n {n} k {k} on {w}×{h}: {:?}", g.size());
                // No other column count shows the images larger.
                let mut cols = k.max(1);
                while cols <= n {
                    let other = GridPlot { cols, ..g };
                    assert!(
                        !fits(&GridPlot { scale: g.scale + 1, ..other }, w, h),
                        "n {n} k {k} on {w}×{h}: {cols} columns fit at scale {}",
                        g.scale + 1
                    );
                    cols += k.max(1);
                }
            }
        }
    }
}
