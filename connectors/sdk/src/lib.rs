//! sluice SDK placeholder
