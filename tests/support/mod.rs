pub mod display;
pub mod lab;
