//! minijinja rendering for templates that come as source text: the files
//! plugins write into a rootfs and the skeleton of `lxc-tmpl new-plugin`.
//! Undefined variables are errors, so a typo never renders as empty text.

/// Renders a minijinja template from its source with a JSON context.
pub fn render_template(name: &str, source: &str, context_json: &str) -> Result<String, String> {
    let context: serde_json::Value =
        serde_json::from_str(context_json).map_err(|e| format!("template {name}: bad context: {e}"))?;
    let mut env = minijinja::Environment::new();
    env.set_keep_trailing_newline(true);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_template(name, source).map_err(|e| format!("template {name}: {e}"))?;
    env.get_template(name)
        .and_then(|t| t.render(minijinja::Value::from_serialize(&context)))
        .map_err(|e| format!("template {name}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_strictly() {
        assert_eq!(render_template("t", "hi {{ name }}\n", r#"{"name":"c1"}"#).unwrap(), "hi c1\n");
        assert!(render_template("t", "hi {{ nme }}", r#"{"name":"c1"}"#).is_err(), "typos must not render empty");
    }
}
