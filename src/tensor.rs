//! Host tensors: a shape and row-major f32 data (images are NCHW).

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

impl Tensor {
    /// Builds a tensor, checking that the data length equals the product of the shape.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
        let n = checked_numel(&shape)?;
        if n != data.len() {
            return Err(Error::Shape {
                op: "Tensor::new",
                detail: format!("shape {shape:?} holds {n} values, data has {}", data.len()),
            });
        }
        Ok(Self { shape, data })
    }

    pub fn zeros(shape: Vec<usize>) -> Result<Self> {
        let n = checked_numel(&shape)?;
        Ok(Self { shape, data: vec![0.0; n] })
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn data(&self) -> &[f32] {
        &self.data
    }

    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    pub fn into_data(self) -> Vec<f32> {
        self.data
    }

    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// Same data, new shape with the same number of elements.
    pub fn reshape(self, shape: Vec<usize>) -> Result<Self> {
        Tensor::new(shape, self.data)
    }
}

/// Product of the dimensions, or an error instead of an overflow.
pub fn checked_numel(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::Shape { op: "numel", detail: format!("shape {shape:?} overflows usize") })
}
