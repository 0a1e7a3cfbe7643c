//! A fix, applied to the components componentize-py builds, for the bytes
//! it never frees.
//!
//! componentize-py 0.25.1 lowers a Python `bytes` into a `list<u8>` (a
//! value returned from an export, or an argument of an import such as
//! `keyed-state.value-set`) by copying it into a fresh allocation that its
//! runtime hands to the generated glue (`wit_dylib_pop_list`) and never
//! frees: the glue trusts the interpreter to own such a buffer, and the
//! interpreter does not register it for release. A Python UDF's memory grew
//! by every byte it emitted or wrote to state until the instance hit its
//! memory limit (an identity map failed after about 350,000 records of
//! 100 bytes under the default 64 MiB).
//!
//! The interpreter already has the hook that frees a buffer once the host
//! has read it: `wit_dylib_dealloc_bytes(cx, ptr, size, align, defer = 1)`
//! releases it when the call's context ends (after an import returns, or in
//! the export's post-return). The fix adds to the runtime's core module a
//! function that calls the original `wit_dylib_pop_list(cx, type, retptr)`
//! and, when it handed out a buffer (`*retptr != 0`; an empty `bytes` gets
//! one too), defers its release that way; the module's export `wit_dylib_pop_list` then names
//! the new function. Nothing else in the component changes. (A buffer is
//! only ever handed out for `list<u8>` and `list<s8>`, allocated with
//! alignment 1, which is what the release is told.)
//!
//! The function layout is wit-dylib's C ABI (`wit_dylib.h` in
//! bytecodealliance/wasm-tools); the section layout is the WebAssembly core
//! and component binary formats.

use wasm_encoder::{
    CodeSection, ExportKind, ExportSection, Function, FunctionSection, Instruction,
};
use wasmparser::{BinaryReader, ExternalKind, FuncType, Parser, Payload, TypeRef, ValType};

/// Names the fix in the cache key of built components: a component built
/// before the fix (or by another version of it) is rebuilt.
pub(super) const ID: &str = "pop-list-fix-2";

/// The componentize-py release whose runtime the fix is written for: a
/// later one may free these buffers itself (the fix would free them twice).
pub(super) const FOR_COMPONENTIZE_PY: &str = "0.25.1";

/// The runtime export the glue calls to lower a list.
const POP_LIST: &str = "wit_dylib_pop_list";
/// The runtime export that frees (or defers freeing) a buffer.
const DEALLOC_BYTES: &str = "wit_dylib_dealloc_bytes";

/// Why a component could not be fixed.
#[derive(Debug, thiserror::Error)]
pub enum FixError {
    /// The bytes are not a well-formed component.
    #[error("not a well-formed component: {0}")]
    Malformed(String),
    /// No core module exports both runtime functions with the expected
    /// signatures (another componentize-py layout).
    #[error(
        "no core module exports `{POP_LIST}` (i32, i32, i32) -> i32 and `{DEALLOC_BYTES}` (i32 ×5): not a componentize-py 0.25 component"
    )]
    NotFound,
}

impl From<wasmparser::BinaryReaderError> for FixError {
    fn from(e: wasmparser::BinaryReaderError) -> Self {
        FixError::Malformed(e.to_string())
    }
}

/// The component `component` with the runtime's `wit_dylib_pop_list`
/// wrapped so that every buffer it hands out is freed after use.
///
/// # Errors
/// [`FixError::Malformed`] when the bytes do not parse, and
/// [`FixError::NotFound`] when no nested core module has the two runtime
/// exports with wit-dylib's signatures.
pub fn fix_component(component: &[u8]) -> Result<Vec<u8>, FixError> {
    let sections = sections(component)?;
    let mut out = component[..8].to_vec();
    let mut fixed = false;
    for (id, body) in sections {
        if id == 1
            && !fixed
            && let Some(module) = fix_module(body)?
        {
            push_section(&mut out, id, &module);
            fixed = true;
            continue;
        }
        push_section(&mut out, id, body);
    }
    if fixed {
        Ok(out)
    } else {
        Err(FixError::NotFound)
    }
}

/// The sections after the 8-byte preamble: `(id, contents)`.
fn sections(bytes: &[u8]) -> Result<Vec<(u8, &[u8])>, FixError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(FixError::Malformed("no `\\0asm` preamble".into()));
    }
    let mut reader = BinaryReader::new(&bytes[8..], 8);
    let mut sections = Vec::new();
    while !reader.eof() {
        let id = reader.read_u8()?;
        let size = reader.read_var_u32()? as usize;
        let body = reader.read_bytes(size)?;
        sections.push((id, body));
    }
    Ok(sections)
}

fn push_section(out: &mut Vec<u8>, id: u8, body: &[u8]) {
    out.push(id);
    leb_u32(
        out,
        u32::try_from(body.len()).expect("a section fits in u32"),
    );
    out.extend_from_slice(body);
}

fn leb_u32(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// What the fix needs to know of the runtime module.
struct Runtime {
    imported_funcs: u32,
    defined_funcs: u32,
    pop_list: u32,
    pop_list_type: u32,
    dealloc_bytes: u32,
}

/// The core module `module` with the fix, or `None` when it is not the
/// runtime (it lacks the exports).
fn fix_module(module: &[u8]) -> Result<Option<Vec<u8>>, FixError> {
    let Some(runtime) = inspect(module)? else {
        return Ok(None);
    };
    let wrapper = runtime.imported_funcs + runtime.defined_funcs;
    let mut out = module[..8].to_vec();
    for (id, body) in sections(module)? {
        match id {
            // Function section: the wrapper's type.
            3 => {
                let mut functions = FunctionSection::new();
                for ty in wasmparser::FunctionSectionReader::new(BinaryReader::new(body, 0))? {
                    functions.function(ty?);
                }
                functions.function(runtime.pop_list_type);
                push_encoded(&mut out, &functions);
            }
            // Export section: `wit_dylib_pop_list` names the wrapper.
            7 => {
                let mut exports = ExportSection::new();
                for export in wasmparser::ExportSectionReader::new(BinaryReader::new(body, 0))? {
                    let export = export?;
                    let index = if export.name == POP_LIST && export.kind == ExternalKind::Func {
                        wrapper
                    } else {
                        export.index
                    };
                    exports.export(export.name, export_kind(export.kind)?, index);
                }
                push_encoded(&mut out, &exports);
            }
            // Code section: the wrapper's body last.
            10 => {
                let mut code = CodeSection::new();
                for function in wasmparser::CodeSectionReader::new(BinaryReader::new(body, 0))? {
                    code.raw(&body[function?.range()]);
                }
                code.function(&wrapper_body(&runtime));
                push_encoded(&mut out, &code);
            }
            _ => push_section(&mut out, id, body),
        }
    }
    Ok(Some(out))
}

fn push_encoded<S: wasm_encoder::Section>(out: &mut Vec<u8>, section: &S) {
    section.append_to(out);
}

fn export_kind(kind: ExternalKind) -> Result<ExportKind, FixError> {
    Ok(match kind {
        ExternalKind::Func | ExternalKind::FuncExact => ExportKind::Func,
        ExternalKind::Table => ExportKind::Table,
        ExternalKind::Memory => ExportKind::Memory,
        ExternalKind::Global => ExportKind::Global,
        ExternalKind::Tag => ExportKind::Tag,
    })
}

/// `pop_list` then, for a buffer handed out, `dealloc_bytes(cx, ptr, len,
/// 1, defer = 1)`; returns the length. (componentize-py allocates even an
/// empty `bytes`, so a zero length is released too.)
///
/// ```text
/// (func (param $cx i32) (param $ty i32) (param $retptr i32) (result i32)
///   (local $len i32) (local $ptr i32)
///   (local.set $len (call $pop_list (local.get $cx) (local.get $ty) (local.get $retptr)))
///   (local.set $ptr (i32.load (local.get $retptr)))
///   (if (i32.ne (local.get $ptr) (i32.const 0))
///     (then (call $dealloc_bytes (local.get $cx) (local.get $ptr) (local.get $len) (i32.const 1) (i32.const 1))))
///   (local.get $len))
/// ```
fn wrapper_body(runtime: &Runtime) -> Function {
    let (cx, ty, retptr, len, ptr) = (0, 1, 2, 3, 4);
    let mut f = Function::new([(2, wasm_encoder::ValType::I32)]);
    f.instruction(&Instruction::LocalGet(cx))
        .instruction(&Instruction::LocalGet(ty))
        .instruction(&Instruction::LocalGet(retptr))
        .instruction(&Instruction::Call(runtime.pop_list))
        .instruction(&Instruction::LocalSet(len))
        .instruction(&Instruction::LocalGet(retptr))
        .instruction(&Instruction::I32Load(wasm_encoder::MemArg {
            offset: 0,
            align: 2,
            memory_index: 0,
        }))
        .instruction(&Instruction::LocalSet(ptr))
        .instruction(&Instruction::LocalGet(ptr))
        .instruction(&Instruction::I32Const(0))
        .instruction(&Instruction::I32Ne)
        .instruction(&Instruction::If(wasm_encoder::BlockType::Empty))
        .instruction(&Instruction::LocalGet(cx))
        .instruction(&Instruction::LocalGet(ptr))
        .instruction(&Instruction::LocalGet(len))
        .instruction(&Instruction::I32Const(1))
        .instruction(&Instruction::I32Const(1))
        .instruction(&Instruction::Call(runtime.dealloc_bytes))
        .instruction(&Instruction::End)
        .instruction(&Instruction::LocalGet(len))
        .instruction(&Instruction::End);
    f
}

/// The runtime's layout when `module` exports both functions with
/// wit-dylib's signatures and has memory 0.
fn inspect(module: &[u8]) -> Result<Option<Runtime>, FixError> {
    let mut types: Vec<Option<FuncType>> = Vec::new();
    let mut imported_funcs = 0u32;
    let mut function_types: Vec<u32> = Vec::new();
    let mut has_memory = false;
    let mut pop_list = None;
    let mut dealloc_bytes = None;
    for payload in Parser::new(0).parse_all(module) {
        match payload? {
            Payload::TypeSection(reader) => {
                for group in reader {
                    for sub in group?.into_types() {
                        types.push(match sub.composite_type.inner {
                            wasmparser::CompositeInnerType::Func(f) => Some(f),
                            _ => None,
                        });
                    }
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    match import?.ty {
                        TypeRef::Func(ty) | TypeRef::FuncExact(ty) => {
                            imported_funcs += 1;
                            function_types.push(ty);
                        }
                        TypeRef::Memory(_) => has_memory = true,
                        _ => {}
                    }
                }
            }
            Payload::FunctionSection(reader) => {
                for ty in reader {
                    function_types.push(ty?);
                }
            }
            Payload::MemorySection(reader) => has_memory |= reader.count() > 0,
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export?;
                    if export.kind == ExternalKind::Func {
                        match export.name {
                            POP_LIST => pop_list = Some(export.index),
                            DEALLOC_BYTES => dealloc_bytes = Some(export.index),
                            _ => {}
                        }
                    }
                }
            }
            // A nested module or component: not a core module.
            Payload::Version {
                encoding: wasmparser::Encoding::Component,
                ..
            } => return Ok(None),
            _ => {}
        }
    }
    let (Some(pop_list), Some(dealloc_bytes)) = (pop_list, dealloc_bytes) else {
        return Ok(None);
    };
    let signature = |index: u32| -> Option<(u32, &FuncType)> {
        let ty = *function_types.get(index as usize)?;
        Some((ty, types.get(ty as usize)?.as_ref()?))
    };
    let i32s = |n: usize| vec![ValType::I32; n];
    let (Some((pop_list_type, pop)), Some((_, dealloc))) =
        (signature(pop_list), signature(dealloc_bytes))
    else {
        return Err(FixError::NotFound);
    };
    if !has_memory
        || pop.params() != i32s(3)
        || pop.results() != i32s(1)
        || dealloc.params() != i32s(5)
        || !dealloc.results().is_empty()
    {
        return Err(FixError::NotFound);
    }
    Ok(Some(Runtime {
        imported_funcs,
        defined_funcs: u32::try_from(function_types.len()).expect("u32 functions") - imported_funcs,
        pop_list,
        pop_list_type,
        dealloc_bytes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for the runtime module: `pop_list` stores a pointer
    /// (its `ty` argument) at `retptr` and returns 5; `dealloc_bytes`
    /// records its arguments at address 100.
    fn runtime_module() -> Vec<u8> {
        use wasm_encoder::*;
        let mut module = Module::new();
        let mut types = TypeSection::new();
        types.ty().function([ValType::I32; 3], [ValType::I32]);
        types.ty().function([ValType::I32; 5], []);
        module.section(&types);
        let mut imports = ImportSection::new();
        imports.import(
            "env",
            "memory",
            MemoryType {
                minimum: 1,
                maximum: None,
                memory64: false,
                shared: false,
                page_size_log2: None,
            },
        );
        module.section(&imports);
        let mut functions = FunctionSection::new();
        functions.function(0).function(1);
        module.section(&functions);
        let mut exports = ExportSection::new();
        exports.export(POP_LIST, ExportKind::Func, 0);
        exports.export(DEALLOC_BYTES, ExportKind::Func, 1);
        module.section(&exports);
        let mut code = CodeSection::new();
        let store = |offset| {
            Instruction::I32Store(MemArg {
                offset,
                align: 2,
                memory_index: 0,
            })
        };
        let mut pop = Function::new([]);
        pop.instruction(&Instruction::LocalGet(2))
            .instruction(&Instruction::LocalGet(1))
            .instruction(&store(0))
            .instruction(&Instruction::I32Const(5))
            .instruction(&Instruction::End);
        code.function(&pop);
        let mut dealloc = Function::new([]);
        for i in 0..5u32 {
            dealloc
                .instruction(&Instruction::I32Const(0))
                .instruction(&Instruction::LocalGet(i))
                .instruction(&store(100 + 4 * u64::from(i)));
        }
        dealloc.instruction(&Instruction::End);
        code.function(&dealloc);
        module.section(&code);
        module.finish()
    }

    fn component_of(module: &[u8]) -> Vec<u8> {
        let mut component = wasm_encoder::Component::new();
        component.section(&wasm_encoder::RawSection {
            id: 1,
            data: module,
        });
        component.finish()
    }

    /// Runs the fixed module's `wit_dylib_pop_list(7, ty, 16)` and returns
    /// its result and what `dealloc_bytes` recorded.
    fn run(fixed_module: &[u8], ty: i32) -> (i32, [i32; 5]) {
        use wasmtime::{Engine, Instance, Memory, MemoryType, Module, Store};
        let engine = Engine::default();
        let module = Module::new(&engine, fixed_module).unwrap();
        let mut store = Store::new(&engine, ());
        let memory = Memory::new(&mut store, MemoryType::new(1, None)).unwrap();
        let instance = Instance::new(&mut store, &module, &[memory.into()]).unwrap();
        let pop = instance
            .get_typed_func::<(i32, i32, i32), i32>(&mut store, POP_LIST)
            .unwrap();
        let len = pop.call(&mut store, (7, ty, 16)).unwrap();
        let mut recorded = [0i32; 5];
        for (i, slot) in recorded.iter_mut().enumerate() {
            let mut word = [0u8; 4];
            memory.read(&store, 100 + 4 * i, &mut word).unwrap();
            *slot = i32::from_le_bytes(word);
        }
        (len, recorded)
    }

    fn nested_module(component: &[u8]) -> Vec<u8> {
        let (_, body) = sections(component)
            .unwrap()
            .into_iter()
            .find(|(id, _)| *id == 1)
            .unwrap();
        body.to_vec()
    }

    #[test]
    fn a_buffer_handed_out_is_released_after_the_call() {
        let fixed = fix_component(&component_of(&runtime_module())).unwrap();
        let module = nested_module(&fixed);
        wasmparser::Validator::new().validate_all(&module).unwrap();
        // `pop_list` handed out buffer 4096 of 5 bytes: released, deferred.
        assert_eq!(run(&module, 4096), (5, [7, 4096, 5, 1, 1]));
    }

    #[test]
    fn no_buffer_means_no_release() {
        let fixed = fix_component(&component_of(&runtime_module())).unwrap();
        assert_eq!(run(&nested_module(&fixed), 0), (5, [0; 5]));
    }

    #[test]
    fn the_unfixed_runtime_releases_nothing() {
        // The oracle for the two tests above: the stand-in alone records
        // no release.
        assert_eq!(run(&runtime_module(), 4096), (5, [0; 5]));
    }

    #[test]
    fn the_fix_is_for_the_componentize_py_the_sdk_pins() {
        let pinned = super::super::python::COMPONENTIZE_PY;
        assert_eq!(pinned.rsplit("==").next(), Some(FOR_COMPONENTIZE_PY));
    }

    #[test]
    fn a_component_without_the_runtime_is_refused() {
        let mut module = wasm_encoder::Module::new();
        module.section(&wasm_encoder::TypeSection::new());
        let component = component_of(&module.finish());
        assert!(matches!(fix_component(&component), Err(FixError::NotFound)));
        assert!(matches!(
            fix_component(b"not wasm"),
            Err(FixError::Malformed(_))
        ));
    }
}
