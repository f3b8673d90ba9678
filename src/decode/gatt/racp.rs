//! Record Access Control Point (0x2A52): the requests a collector writes and the responses the
//! server indicates. A collector asks for the records after the last one it delivered
//! ("report stored records, greater than or equal to sequence number N"); records arrive as
//! Glucose Measurement notifications, and a response code ends the procedure.

use super::reader::GattError;

pub const OP_REPORT_RECORDS: u8 = 0x01;
pub const OP_DELETE_RECORDS: u8 = 0x02;
pub const OP_ABORT: u8 = 0x03;
pub const OP_REPORT_NUMBER: u8 = 0x04;
pub const OP_NUMBER_RESPONSE: u8 = 0x05;
pub const OP_RESPONSE_CODE: u8 = 0x06;

const OPERATOR_NULL: u8 = 0x00;
const OPERATOR_ALL: u8 = 0x01;
const OPERATOR_GREATER_OR_EQUAL: u8 = 0x03;
const FILTER_SEQUENCE_NUMBER: u8 = 0x01;

/// What a collector asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Report every stored record.
    ReportAll,
    /// Report the records whose sequence number is at least this.
    ReportFrom(u16),
    /// How many records are stored.
    NumberOfAll,
    Abort,
}

impl Request {
    pub fn encode(self) -> Vec<u8> {
        match self {
            Request::ReportAll => vec![OP_REPORT_RECORDS, OPERATOR_ALL],
            Request::ReportFrom(n) => {
                let [lo, hi] = n.to_le_bytes();
                vec![OP_REPORT_RECORDS, OPERATOR_GREATER_OR_EQUAL, FILTER_SEQUENCE_NUMBER, lo, hi]
            }
            Request::NumberOfAll => vec![OP_REPORT_NUMBER, OPERATOR_ALL],
            Request::Abort => vec![OP_ABORT, OPERATOR_NULL],
        }
    }
}

/// What the server answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    /// The request `request` ended with `code` (1 = success).
    Code {
        request: u8,
        code: u8,
    },
    NumberOfRecords(u32),
}

impl Response {
    pub fn is_success(self) -> bool {
        matches!(self, Response::Code { code: 1, .. })
    }

    /// "no records found" (6) ends a report that had nothing to send: not a failure.
    pub fn is_no_records(self) -> bool {
        matches!(self, Response::Code { code: 6, .. })
    }
}

/// The meaning of a response code (RACP, Glucose Service 1.0).
pub fn code_meaning(code: u8) -> &'static str {
    match code {
        1 => "success",
        2 => "op code not supported",
        3 => "invalid operator",
        4 => "operator not supported",
        5 => "invalid operand",
        6 => "no records found",
        7 => "abort unsuccessful",
        8 => "procedure not completed",
        9 => "operand not supported",
        _ => "unknown error code",
    }
}

pub fn decode_response(bytes: &[u8]) -> Result<Response, GattError> {
    let (&op, rest) = bytes.split_first().ok_or_else(|| GattError::new("empty RACP indication"))?;
    let (&operator, operand) = rest.split_first().ok_or_else(|| GattError::new("RACP indication without operator"))?;
    if operator != OPERATOR_NULL {
        return Err(GattError::new(format!("operator {operator} in a response (must be Null)")));
    }
    match (op, operand) {
        (OP_RESPONSE_CODE, [request, code]) => Ok(Response::Code { request: *request, code: *code }),
        (OP_NUMBER_RESPONSE, [a]) => Ok(Response::NumberOfRecords(u32::from(*a))),
        (OP_NUMBER_RESPONSE, [a, b]) => Ok(Response::NumberOfRecords(u32::from(u16::from_le_bytes([*a, *b])))),
        (OP_NUMBER_RESPONSE, [a, b, c, d]) => Ok(Response::NumberOfRecords(u32::from_le_bytes([*a, *b, *c, *d]))),
        (OP_RESPONSE_CODE | OP_NUMBER_RESPONSE, _) => {
            Err(GattError::new(format!("RACP op code {op}: operand of {} bytes not supported", operand.len())))
        }
        _ => Err(GattError::new(format!("RACP op code {op} is not a response"))),
    }
}
