//! `sgwatch explain`: placeholder until the handler's decision logic is wired in.
