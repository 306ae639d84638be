//! What an ONNX file may hold before it is loaded: its weights inside it. A tensor may name an
//! external file for its data (ONNX's `data_location: EXTERNAL`); the model's SHA-256 would not
//! cover those bytes, and a registered model could read another model's file, or any file, as
//! its weights. Both backends would follow such a reference, so it is refused here, before
//! either sees the file.

use prost::Message;
use tract_onnx::pb::{AttributeProto, GraphProto, ModelProto, NodeProto, SparseTensorProto, TensorProto};

/// ONNX's `TensorProto.DataLocation.EXTERNAL`.
const EXTERNAL: i32 = 1;

/// `Err` naming the first tensor whose data lives outside the file (or why the file is not ONNX).
pub fn refuse_external_data(bytes: &[u8]) -> Result<(), String> {
    let model = ModelProto::decode(bytes).map_err(|e| format!("not an ONNX model: {e}"))?;
    let mut found = None;
    if let Some(g) = &model.graph {
        graph(g, &mut found);
    }
    for f in &model.functions {
        nodes(&f.node, &mut found);
    }
    match found {
        None => Ok(()),
        Some(name) => Err(format!(
            "the tensor {name:?} keeps its data in an external file; only self-contained ONNX files are accepted \
             (save the model with its weights inside it, e.g. onnx.save(model, path, save_as_external_data=False))"
        )),
    }
}

fn graph(g: &GraphProto, found: &mut Option<String>) {
    for t in &g.initializer {
        tensor(t, found);
    }
    for s in &g.sparse_initializer {
        sparse(s, found);
    }
    nodes(&g.node, found);
}

fn nodes(list: &[NodeProto], found: &mut Option<String>) {
    for n in list {
        for a in &n.attribute {
            attribute(a, found);
        }
    }
}

fn attribute(a: &AttributeProto, found: &mut Option<String>) {
    a.t.iter().chain(&a.tensors).for_each(|t| tensor(t, found));
    a.sparse_tensor.iter().chain(&a.sparse_tensors).for_each(|s| sparse(s, found));
    a.g.iter().chain(&a.graphs).for_each(|g| graph(g, found));
}

fn sparse(s: &SparseTensorProto, found: &mut Option<String>) {
    s.values.iter().chain(&s.indices).for_each(|t| tensor(t, found));
}

fn tensor(t: &TensorProto, found: &mut Option<String>) {
    if found.is_none() && (t.data_location == Some(EXTERNAL) || !t.external_data.is_empty()) {
        *found = Some(t.name.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::pb::StringStringEntryProto;

    fn model_with(t: TensorProto) -> Vec<u8> {
        ModelProto { graph: Some(GraphProto { initializer: vec![t], ..Default::default() }), ..Default::default() }
            .encode_to_vec()
    }

    #[test]
    fn weights_inside_the_file_pass_and_external_ones_are_refused() {
        let inside = TensorProto { name: "w".into(), raw_data: vec![0; 16], ..Default::default() };
        refuse_external_data(&model_with(inside)).unwrap();
        let outside = TensorProto {
            name: "w".into(),
            data_location: Some(EXTERNAL),
            external_data: vec![StringStringEntryProto {
                key: "location".into(),
                value: "../other-model/model.onnx".into(),
            }],
            ..Default::default()
        };
        let e = refuse_external_data(&model_with(outside)).unwrap_err();
        assert!(e.starts_with("the tensor \"w\" keeps its data in an external file"), "{e}");
        // Inside a subgraph of a node's attribute (If, Loop) too.
        let nested = TensorProto { name: "deep".into(), data_location: Some(EXTERNAL), ..Default::default() };
        let sub = GraphProto { initializer: vec![nested], ..Default::default() };
        let node =
            NodeProto { attribute: vec![AttributeProto { g: Some(sub), ..Default::default() }], ..Default::default() };
        let m = ModelProto { graph: Some(GraphProto { node: vec![node], ..Default::default() }), ..Default::default() };
        assert!(refuse_external_data(&m.encode_to_vec()).unwrap_err().contains("\"deep\""));
        assert!(refuse_external_data(b"\xff\xff not onnx").unwrap_err().starts_with("not an ONNX model"));
    }
}
