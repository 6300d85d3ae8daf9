pub mod margin;
pub mod window;
