//! `shop customer …` as a user runs it: the real binary against a real
//! ring, broker and customer portal process, through a whole story, with
//! the exit codes (0 done, 1 refused or bad input, 2 no answer).

mod common;

use common::{customer, product, Spec};
use ringkv_testkit::free_port;
use serde_json::Value;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

/// `shop customer --url URL --cid CID ARGS…`.
async fn shop(url: &str, cid: &str, args: &[&str]) -> Run {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_shop"))
        .args(["customer", "--url", url, "--cid", cid])
        .args(args)
        .env_remove("SHOP_CUSTOMER_URL")
        .env_remove("SHOP_CID")
        .output()
        .await
        .unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!("$ shop customer {}\n{}{}[{}]", args.join(" "), run.stdout, run.stderr, run.code);
    run
}

#[tokio::test(flavor = "multi_thread")]
async fn a_customer_shops_from_the_command_line() {
    let Some(shop_) = common::start(Spec::new(1, 1)).await else { return };
    let mut admin = shop_.portal(0);
    admin.create_customer(customer("ada", "Ada Lovelace", "ada@example.org")).await.unwrap();
    admin.create_product(product("mug", "Blue mug", 2, 4.5)).await.unwrap();
    admin.create_product(product("pen", "Fountain pen", 10, 1.25)).await.unwrap();
    let portal = shop_.start_customer_portal(&[]).await;
    let url = portal.url.as_str();

    // The catalogue, readable and as JSON.
    let r = shop(url, "ada", &["products"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("PID  IN STOCK  PRICE  DESCRIPTION\n"), "{}", r.stdout);
    assert!(r.stdout.contains("mug         2   4.50  \"Blue mug\""), "{}", r.stdout);
    let r = shop(url, "ada", &["--json", "products", "--limit", "1"]).await;
    assert_eq!(r.json()["products"][0]["pid"], "mug");
    assert!(shop(url, "ada", &["products", "--after", "mug"]).await.stdout.contains("pen"));
    let r = shop(url, "ada", &["product", "pen"]).await;
    assert_eq!(r.stdout.trim(), "product pen  version 1\n  description \"Fountain pen\"  in stock 10  price 1.25");

    // An order: opened, two lines, one change refused for want of stock.
    let r = shop(url, "ada", &["order", "new", "--json"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let oid = r.json()["oid"].as_str().unwrap().to_owned();
    let r = shop(url, "ada", &["order", "set", &oid, "mug", "1"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("total 4.50"), "{}", r.stdout);
    let r = shop(url, "ada", &["order", "set", &oid, "mug", "7"]).await;
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr.trim(), "shop: product mug: 6 more unit(s) wanted, 1 in stock (409 insufficient_stock)");
    assert_eq!(r.stdout, "");
    assert_eq!(shop(url, "ada", &["order", "set", &oid, "pen", "3"]).await.code, 0);

    let r = shop(url, "ada", &["order", "show", &oid]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with(&format!("order {oid}  open  version ")), "{}", r.stdout);
    assert!(r.stdout.contains("  mug         1        4.50      4.50\n"), "{}", r.stdout);
    assert!(r.stdout.contains("  pen         3        1.25      3.75\n"), "{}", r.stdout);
    assert!(r.stdout.trim_end().ends_with("total 8.25"), "{}", r.stdout);
    assert_eq!(shop(url, "ada", &["--json", "order", "show", &oid]).await.json()["total_cents"], 825);

    let r = shop(url, "ada", &["order", "list"]).await;
    assert!(r.stdout.starts_with("OID  "), "{}", r.stdout);
    assert!(r.stdout.contains(&oid) && r.stdout.contains("8.25"), "{}", r.stdout);
    assert_eq!(shop(url, "ada", &["order", "list", "--json"]).await.json()["orders"][0]["oid"], oid.as_str());

    // Cancelled: the stock is back and the order no longer listed.
    let r = shop(url, "ada", &["order", "cancel", &oid]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with(&format!("cancelled order {oid}  cancelled")), "{}", r.stdout);
    assert_eq!(shop(url, "ada", &["order", "list"]).await.stdout.trim(), "(no open orders)");
    assert_eq!(shop(url, "ada", &["--json", "product", "mug"]).await.json()["quantity"], 2);
    let r = shop(url, "ada", &["order", "set", &oid, "mug", "1"]).await;
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("(409 failed_precondition)"), "{}", r.stderr);

    // Refusals and bad input: 1.
    let r = shop(url, "nobody", &["products"]).await;
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("(401 unauthorized)"), "{}", r.stderr);
    let r = shop(url, "ada", &["order", "show", "0000000000000000"]).await;
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("(404 not_found)"), "{}", r.stderr);
    let r = shop(url, "ada", &["product", "no-such"]).await;
    assert_eq!(r.code, 1);
    let r = shop(url, "ada", &["order", "set", &oid, "mug", "-1"]).await;
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("(400 "), "{}", r.stderr);
    assert_eq!(shop(url, "ada", &["order", "set", &oid, "mug", "two"]).await.code, 1);
    assert_eq!(shop(url, "ada", &["order", "frobnicate"]).await.code, 1);
    assert_eq!(shop("ftp://127.0.0.1:1", "ada", &["products"]).await.code, 1);

    // No portal there: 2.
    let nobody = format!("http://127.0.0.1:{}", free_port().unwrap());
    let r = shop(&nobody, "ada", &["order", "list"]).await;
    assert_eq!(r.code, 2);
    assert!(r.stderr.starts_with(&format!("shop: {nobody}: cannot reach the customer portal")), "{}", r.stderr);
    drop(portal);
}
