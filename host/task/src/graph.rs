//! From the JobGraph to the ExecutionGraph's shape: vertices in topological
//! order, their parallelism, and operator chains.
//!
//! A vertex is chained to its input (runs in the same thread, no queue in
//! between) when the edge is `forward`, the parallelisms are equal and the
//! input feeds no other vertex — Flink's chaining rule, minus the options.

use weir_types::jobgraph::{InputSpec, JobGraph, OperatorSpec, Partitioning, SinkSpec, SourceSpec};

/// What a vertex is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum VertexKind<'a> {
    Source(&'a SourceSpec),
    Operator(&'a OperatorSpec),
    Sink(&'a SinkSpec),
}

/// An input edge of a vertex.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Edge<'a> {
    /// The upstream vertex.
    pub(crate) from: usize,
    /// How records reach this vertex's subtasks.
    pub(crate) partition: Partitioning,
    /// The upstream operator's side output read (`None`: its main output).
    pub(crate) output: Option<&'a str>,
    /// Field to re-key records by before partitioning.
    pub(crate) key: Option<&'a str>,
}

/// One vertex of the job with its resolved parallelism and edges.
#[derive(Debug, Clone)]
pub(crate) struct Vertex<'a> {
    pub(crate) id: &'a str,
    pub(crate) kind: VertexKind<'a>,
    pub(crate) parallelism: u32,
    /// The input edges, in the order the job file lists them (a join's
    /// left input first). Empty for sources.
    pub(crate) inputs: Vec<Edge<'a>>,
    /// `(consumer vertex, index of the edge in its inputs)` for every
    /// vertex that reads this one.
    pub(crate) consumers: Vec<(usize, usize)>,
}

impl Vertex<'_> {
    /// Is any input partitioned by key (so the vertex has keyed state)?
    pub(crate) fn is_keyed(&self) -> bool {
        self.inputs
            .iter()
            .any(|e| e.partition == Partitioning::KeyBy)
    }
}

/// A chain: a head vertex and the vertices chained after it, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chain {
    pub(crate) vertices: Vec<usize>,
}

/// The planned job: vertices (topologically ordered) and chains.
#[derive(Debug)]
pub(crate) struct Plan<'a> {
    pub(crate) vertices: Vec<Vertex<'a>>,
    pub(crate) chains: Vec<Chain>,
}

impl<'a> Plan<'a> {
    /// Orders the vertices (sources, then operators as their inputs become
    /// available, then sinks) and forms the chains. The job was validated
    /// when it was parsed (references exist, no cycles).
    pub(crate) fn new(job: &'a JobGraph) -> Self {
        let mut vertices: Vec<Vertex<'a>> = Vec::new();
        for s in &job.sources {
            vertices.push(Vertex {
                id: &s.id,
                kind: VertexKind::Source(s),
                parallelism: s.parallelism.unwrap_or(job.parallelism),
                inputs: Vec::new(),
                consumers: Vec::new(),
            });
        }
        let edge = |vertices: &[Vertex<'a>], input: &'a InputSpec, partition| {
            let from = vertices.iter().position(|v| v.id == input.from)?;
            Some(Edge {
                from,
                partition,
                output: input.output.as_deref(),
                key: input.key.as_deref(),
            })
        };
        let mut pending: Vec<&OperatorSpec> = job.operators.iter().collect();
        while !pending.is_empty() {
            let before = pending.len();
            pending.retain(|o| {
                let inputs: Option<Vec<Edge<'a>>> = o
                    .input
                    .iter()
                    .map(|i| edge(&vertices, i, o.partition))
                    .collect();
                let Some(inputs) = inputs else {
                    return true;
                };
                vertices.push(Vertex {
                    id: &o.id,
                    kind: VertexKind::Operator(o),
                    parallelism: o.parallelism.unwrap_or(job.parallelism),
                    inputs,
                    consumers: Vec::new(),
                });
                false
            });
            if pending.len() == before {
                break; // unreachable for a validated job (cycles are rejected)
            }
        }
        for s in &job.sinks {
            if let Some(input) = edge(&vertices, &s.input, s.partition) {
                let parallelism = s.parallelism.unwrap_or(vertices[input.from].parallelism);
                vertices.push(Vertex {
                    id: &s.id,
                    kind: VertexKind::Sink(s),
                    parallelism,
                    inputs: vec![input],
                    consumers: Vec::new(),
                });
            }
        }
        for i in 0..vertices.len() {
            for e in 0..vertices[i].inputs.len() {
                let up = vertices[i].inputs[e].from;
                vertices[up].consumers.push((i, e));
            }
        }
        let chains = Self::chains(&vertices);
        Self { vertices, chains }
    }

    /// Flink's chaining rule: one forward edge from the main output of a
    /// vertex with the same parallelism and no other consumer.
    fn chained_to_input(vertices: &[Vertex<'_>], v: usize) -> bool {
        match vertices[v].inputs[..] {
            [
                Edge {
                    from,
                    partition: Partitioning::Forward,
                    output: None,
                    key: None,
                },
            ] => {
                vertices[from].parallelism == vertices[v].parallelism
                    && vertices[from].consumers.len() == 1
            }
            _ => false,
        }
    }

    fn chains(vertices: &[Vertex<'_>]) -> Vec<Chain> {
        let mut chains = Vec::new();
        for head in 0..vertices.len() {
            if Self::chained_to_input(vertices, head) {
                continue;
            }
            let mut chain = vec![head];
            let mut at = head;
            while let [(next, _)] = vertices[at].consumers[..] {
                if !Self::chained_to_input(vertices, next) {
                    break;
                }
                chain.push(next);
                at = next;
            }
            chains.push(Chain { vertices: chain });
        }
        chains
    }

    /// Index of the first producer of input `edge` of `vertex`.
    pub(crate) fn producer_offset(&self, vertex: usize, edge: usize) -> u32 {
        self.vertices[vertex].inputs[..edge]
            .iter()
            .map(|e| self.vertices[e.from].parallelism)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn plan_of(yaml: &str) -> Vec<Vec<String>> {
        let job = JobGraph::from_yaml(yaml, Path::new("t.yaml")).expect("valid job");
        let plan = Plan::new(&job);
        plan.chains
            .iter()
            .map(|c| {
                c.vertices
                    .iter()
                    .map(|v| plan.vertices[*v].id.to_string())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn forward_edges_chain_and_key_by_breaks_the_chain() {
        let chains = plan_of(
            "name: t\nsources: [{id: src, type: datagen, count: 1}]\noperators:\n  - {id: a, input: src, udf: x.wasm}\n  - {id: b, input: a, partition: key_by, udf: x.wasm}\nsinks: [{id: out, input: b, type: blackhole}]\n",
        );
        assert_eq!(chains, vec![vec!["src", "a"], vec!["b", "out"]]);
    }

    #[test]
    fn fan_out_is_not_chained() {
        let chains = plan_of(
            "name: t\nsources: [{id: src, type: datagen, count: 1}]\nsinks:\n  - {id: s1, input: src, type: blackhole}\n  - {id: s2, input: src, type: stdout}\n",
        );
        assert_eq!(chains, vec![vec!["src"], vec!["s1"], vec!["s2"]]);
    }

    #[test]
    fn operators_are_ordered_by_dependency() {
        let chains = plan_of(
            "name: t\nparallelism: 2\nsources: [{id: src, type: datagen, count: 1}]\noperators:\n  - {id: b, input: a, partition: rebalance, udf: x.wasm, parallelism: 1}\n  - {id: a, input: src, udf: x.wasm}\nsinks: [{id: out, input: b, type: blackhole}]\n",
        );
        assert_eq!(chains, vec![vec!["src", "a"], vec!["b", "out"]]);
    }
}
