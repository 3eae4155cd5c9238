//! The language of each answer: `Accept-Language` negotiated once per request
//! (zh-CN or en; English when absent or unknown, see
//! [`herald_core::i18n::Lang::negotiate`]), held for the request's task, so
//! that errors (and row errors of an upload) render their messages in it at
//! the edge. The answer says which in `Content-Language`.

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use herald_core::i18n::Lang;

tokio::task_local! {
    static LANG: Lang;
}

/// The language of the request being answered (English outside a request).
pub fn lang() -> Lang {
    LANG.try_with(|l| *l).unwrap_or_default()
}

/// The language a request asks for.
pub fn requested(headers: &axum::http::HeaderMap) -> Lang {
    Lang::negotiate(headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()))
}

/// Middleware: answer in the negotiated language.
pub async fn negotiate(req: Request, next: Next) -> Response {
    let lang = requested(req.headers());
    let mut resp = LANG.scope(lang, next.run(req)).await;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LANGUAGE, HeaderValue::from_static(lang.tag()));
    h.append(header::VARY, HeaderValue::from_static("Accept-Language"));
    resp
}

#[cfg(test)]
mod tests {
    //! The admin API in-process on a fresh SQLite store, spoken to over HTTP.

    use serde_json::{Value, json};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct Server {
        addr: std::net::SocketAddr,
        _dir: tempfile::TempDir,
    }

    async fn server() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let app = crate::state::test_app(crate::config::Config { data_dir: dir.path().to_path_buf(), ..Default::default() }).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, crate::api::router(app)).await });
        Server { addr, _dir: dir }
    }

    /// (status, Content-Language, JSON body)
    async fn call(s: &Server, method: &str, path: &str, lang: Option<&str>, body: Value) -> (u16, String, Value) {
        let body = body.to_string();
        let lang = lang.map(|l| format!("Accept-Language: {l}\r\n")).unwrap_or_default();
        let req = format!(
            "{method} /api/v1{path} HTTP/1.1\r\nHost: {}\r\n{lang}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            s.addr,
            body.len()
        );
        let mut stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        let text = String::from_utf8(raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let status = head[9..12].parse().unwrap();
        let content_language = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().starts_with("content-language:").then(|| l[17..].trim().to_string()))
            .unwrap_or_default();
        (status, content_language, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn errors_speak_the_language_asked_for() {
        let s = server().await;
        let cases = [
            (Some("zh-CN"), "zh-CN", "登录名或密码错误"),
            (Some("zh"), "zh-CN", "登录名或密码错误"),
            (Some("zh-Hans-CN,zh;q=0.9"), "zh-CN", "登录名或密码错误"),
            (Some("en"), "en", "wrong login or password"),
            (Some("en-US"), "en", "wrong login or password"),
            (Some("en-US;q=0.5, zh-CN;q=0.8"), "zh-CN", "登录名或密码错误"),
            (Some("zh-CN;q=0.1, en;q=0.9"), "en", "wrong login or password"),
            (Some("fr-FR, de"), "en", "wrong login or password"),
            (Some("*"), "en", "wrong login or password"),
            (None, "en", "wrong login or password"),
        ];
        for (i, (header, tag, message)) in cases.into_iter().enumerate() {
            let (status, lang, body) = call(&s, "POST", "/login", header, json!({"login": format!("nobody{i}"), "password": "x"})).await;
            assert_eq!(status, 401, "{header:?}: {body}");
            assert_eq!(body["error"]["code"], "invalid_credentials", "codes do not change with the language");
            assert_eq!(body["error"]["message"], message, "{header:?}");
            assert_eq!(lang, tag, "{header:?}");
        }
    }

    #[tokio::test]
    async fn validator_messages_and_arguments_are_translated_too() {
        let s = server().await;
        let reg = |password: &str| json!({"enterprise_name": "示例", "admin_login": "boss", "admin_password": password, "admin_name": "Boss"});
        let (status, _, body) = call(&s, "POST", "/register", Some("zh-CN"), reg("short")).await;
        assert_eq!(status, 400);
        assert_eq!(body["error"]["message"], "密码至少需要 10 个字符");
        assert_eq!(body["error"]["field"], "admin_password");
        let (_, _, body) = call(&s, "POST", "/register", Some("en"), reg("short")).await;
        assert_eq!(body["error"]["message"], "the password must have at least 10 characters");
        // A malformed body: the sentence in the language asked for, the field named, the code and field unchanged.
        let (status, _, body) = call(&s, "POST", "/login", Some("zh-CN"), json!({"login": 3})).await;
        assert_eq!((status, body["error"]["code"].as_str(), body["error"]["field"].as_str()), (400, Some("invalid_body"), Some("login")));
        assert_eq!(body["error"]["message"], "字段 login 类型错误：应为字符串，实为整数 3");
        let (_, _, body) = call(&s, "POST", "/login", Some("en"), json!({"login": 3})).await;
        assert_eq!(body["error"]["message"], "login has the wrong type: expected a string, got an integer 3");
        let (status, _, body) = call(&s, "POST", "/login", Some("zh-CN"), json!({"password": "x"})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_body")));
        assert_eq!(body["error"]["message"], "缺少字段 login");
        let (_, _, body) = call(
            &s,
            "POST",
            "/register",
            Some("zh-CN"),
            reg("a-long-enough-passphrase")
                .as_object()
                .map(|o| {
                    let mut o = o.clone();
                    o.insert("extra".into(), json!(1));
                    Value::Object(o)
                })
                .unwrap(),
        )
        .await;
        assert!(body["error"]["message"].as_str().unwrap().starts_with("未知字段 extra"), "{body}");
        // A query parameter's own check, and serde's words for a parameter.
        let zh = |text: &str, field: &str| crate::web::serde_message(text, field).render(herald_core::i18n::Lang::ZhCn);
        assert_eq!(zh("must not be negative", "limit"), "字段 limit 无效：不能为负数");
        assert_eq!(zh("unknown variant `up`, expected `asc` or `desc`", "order"), "字段 order 的值 up 不被接受：应为 asc, desc 之一");
        assert_eq!(zh("unknown variant `up`, expected one of `a`, `b`", "order"), "字段 order 的值 up 不被接受：应为 a, b 之一");
        assert_eq!(zh("invalid type: map, expected u64", "limit"), "字段 limit 类型错误：应为整数，实为对象");
        assert_eq!(zh("invalid digit found in string", "limit"), "字段 limit 无效：invalid digit found in string");
        // A weak password: zxcvbn's warning in Chinese.
        let (_, _, body) = call(&s, "POST", "/register", Some("zh-CN"), reg("password123")).await;
        assert_eq!(body["error"]["code"], "weak_password");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("密码太容易被猜到（") && !message.is_ascii() && !message.contains("password"), "{message}");
        // A route that does not exist.
        let (status, _, body) = call(&s, "GET", "/nowhere", Some("zh-CN"), Value::Null).await;
        assert_eq!((status, body["error"]["message"].as_str()), (404, Some("没有这个接口")));
    }
}
