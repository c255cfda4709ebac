//! HTTP polling source with the Alpha Vantage stock-quote flavour for sluice.
