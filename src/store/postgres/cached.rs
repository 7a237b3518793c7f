//! A transaction whose statements are prepared once per connection. The `postgres` client
//! prepares a statement given as text at every call, one round trip more for each; the
//! engine's commits and the workers' claims run the same few statements thousands of times.

use std::collections::HashMap;

use postgres::types::ToSql;
use postgres::{Row, Statement, Transaction};

/// Prepared statements of one connection, by their SQL.
pub(super) type Statements = HashMap<String, Statement>;

/// A transaction that prepares each statement once (the same calls as [`Transaction`]'s).
pub(super) struct Cached<'a, 't> {
    tx: Transaction<'t>,
    statements: &'a mut Statements,
}

type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

impl<'a, 't> Cached<'a, 't> {
    pub(super) fn new(tx: Transaction<'t>, statements: &'a mut Statements) -> Cached<'a, 't> {
        Cached { tx, statements }
    }

    fn statement(&mut self, sql: &str) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.tx.prepare(sql)?;
        self.statements.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }

    pub(super) fn query(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Vec<Row>, postgres::Error> {
        let statement = self.statement(sql)?;
        self.tx.query(&statement, params)
    }

    pub(super) fn query_opt(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Option<Row>, postgres::Error> {
        let statement = self.statement(sql)?;
        self.tx.query_opt(&statement, params)
    }

    pub(super) fn query_one(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Row, postgres::Error> {
        let statement = self.statement(sql)?;
        self.tx.query_one(&statement, params)
    }

    pub(super) fn execute(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<u64, postgres::Error> {
        let statement = self.statement(sql)?;
        self.tx.execute(&statement, params)
    }

    /// The transaction itself, for helpers that take any client (a path's root look-up).
    pub(super) fn inner(&mut self) -> &mut Transaction<'t> {
        &mut self.tx
    }

    pub(super) fn commit(self) -> Result<(), postgres::Error> {
        self.tx.commit()
    }
}
