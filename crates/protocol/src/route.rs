//! Which service a raw request is for.
